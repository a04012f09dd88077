"""The environment a child process of a test runs with: this process's own, less the settings a
developer's shell may hold (they would leak into the child), with this worktree's src/ first
on the import path."""

from __future__ import annotations

import os
from pathlib import Path

from tests.server import ROOT

SRC = str(ROOT / "src")


def inherited(*dropped: str) -> dict[str, str]:
    """This process's environment less every variable whose name starts with one of
    ``dropped``."""
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}


def cli_environ(
    uri: str, database: str, inbound: Path, outbound: Path, **settings: str
) -> dict[str, str]:
    """For ``python -m tracos_sync``: the database and folders given, no MONGO_ or DATA_
    setting inherited, database retries short enough for a test; ``settings`` last."""
    return {
        **inherited("MONGO_", "DATA_"),
        "MONGO_URI": uri,
        "MONGO_DATABASE": database,
        "DATA_INBOUND_DIR": str(inbound),
        "DATA_OUTBOUND_DIR": str(outbound),
        "MONGO_RETRY_SECONDS": "5",
        "PYTHONPATH": SRC,
        **settings,
    }
