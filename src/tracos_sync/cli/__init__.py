"""Command line: ``tracos-sync run|inbound|outbound|watch|check|replay|seed|fake-erp|mapping``.

Exit codes: 0 the run completed (rejected inputs are reported, not failures); 1 it could not
complete (what was done is kept); 2 bad configuration or usage.
"""

from tracos_sync.cli.commands import cli, main, with_default_command

__all__ = ["cli", "main", "with_default_command"]
