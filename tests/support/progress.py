"""Faults timed by a run's progress, not by the clock: watch what a sync process has done so far
(files archived, outbound files written, work orders marked) and act on it at the n-th one."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIDECAR = ".error.json"
# A tight poll: a batch of a few files is written or archived in milliseconds, and the point is
# to land between two of them. A directory listing costs microseconds.
FOLDER_POLL = 0.001
# A count on the database costs a round trip: looked at a little less often.
DATABASE_POLL = 0.003

Counter = Callable[[], int]


def json_files(folder: Path, since_ns: int = 0) -> int:
    """``*.json`` entries of ``folder`` (sidecar reason files not counted) changed since."""
    count = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(".json") or name.endswith(SIDECAR) or name.startswith("."):
                continue
            if since_ns:
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime_ns < since_ns:
                        continue
            count += 1
    return count


def archived(processed: Path, rejected: Path) -> Counter:
    """Files archived (processed/ or rejected/) since this counter was made."""
    before = json_files(processed) + json_files(rejected)
    return lambda: json_files(processed) + json_files(rejected) - before


def written(outbound: Path) -> Counter:
    """Outbound files renamed into place since this counter was made (a rename keeps the temp
    file's time, which is after the start)."""
    since = time.time_ns()
    return lambda: json_files(outbound, since)


def marked(collection: Any) -> Counter:
    """Work orders marked synced since this counter was made (inbound's writes, stored synced,
    count too: for a run, progress either way)."""
    before = collection.count_documents({"isSynced": True})
    return lambda: collection.count_documents({"isSynced": True}) - before


def wait_for(proc: subprocess.Popen[str], counter: Counter, n: int, limit: float = 60.0) -> bool:
    """Until ``counter`` reaches ``n`` while the process runs (True), or the process ends or
    ``limit`` passes first (False)."""
    poll = FOLDER_POLL
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False  # it finished first: nothing to act on
        started = time.monotonic()
        if counter() >= n:
            return True
        # A counter that costs a round trip is polled less often than a folder listing.
        poll = DATABASE_POLL if time.monotonic() - started > 0.0005 else FOLDER_POLL
        time.sleep(poll)
    return False
