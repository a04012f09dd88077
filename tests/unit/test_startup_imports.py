"""What every process of the CLI imports before it does anything: asyncssh (about a tenth of a
second of each start) only once an integration's folders are on SFTP. The suite runs the CLI
hundreds of times; an operator's cron runs it for ever."""

from __future__ import annotations

import subprocess
import sys

LOADS_CLI = "import sys, tracos_sync.cli; print('asyncssh' in sys.modules)"


def test_the_cli_starts_without_asyncssh() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOADS_CLI], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
