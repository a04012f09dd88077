"""Claims: a folder of this instance's own under ``<inbound>/.claims/`` into which inbound files are
renamed before they are read, so that several instances sharing one inbound folder each take a
file exactly once. A claim folder left by a dead instance is put back at start-up."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from pathlib import Path

import structlog

from .fsops import move_no_clobber

log = structlog.get_logger("tracos_sync.files")

CLAIMS_FOLDER = ".claims"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ClaimFolder:
    """This instance's claim folder and the recovery of abandoned ones."""

    def __init__(self, inbound: Path, stale_seconds: float) -> None:
        self._inbound = inbound
        self._stale_seconds = stale_seconds
        self._host = socket.gethostname().replace("-", "_")
        self.root = inbound / CLAIMS_FOLDER
        self.path = self.root / f"{self._host}-{os.getpid()}-{secrets.token_hex(4)}"

    def open(self) -> None:
        """Create the claims root, put back abandoned claims, create our own folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.recover_abandoned()
        self.path.mkdir()

    def recover_abandoned(self) -> None:
        """Put back files claimed by an instance that died before archiving them."""
        for entry in os.scandir(self.root):
            if not entry.is_dir(follow_symlinks=False):
                continue
            host, _, rest = entry.name.partition("-")
            pid_text = rest.partition("-")[0]
            if host == self._host and pid_text.isdigit():
                abandoned = not _pid_alive(int(pid_text))
            else:  # another machine's claim: abandoned once untouched for long enough
                abandoned = time.time() - entry.stat().st_mtime > self._stale_seconds
            if not abandoned:
                continue
            folder = Path(entry.path)
            for claimed in os.scandir(folder):
                with contextlib.suppress(FileNotFoundError):
                    back = move_no_clobber(Path(claimed.path), self._inbound, claimed.name)
                    log.warning("inbound.claim_recovered", file=back.name, claim=entry.name)
            with contextlib.suppress(OSError):
                folder.rmdir()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def count_claimed(inbound: Path) -> int:
    """Files held in any claim folder (running or crashed instances)."""
    claims = inbound / CLAIMS_FOLDER
    return sum(1 for p in claims.rglob("*") if p.is_file()) if claims.is_dir() else 0
