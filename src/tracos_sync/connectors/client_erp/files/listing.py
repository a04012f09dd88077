"""Listing the inbound folder: the files waiting to be taken, oldest first. A file is waiting once
it is older than ``INBOUND_MIN_AGE_SECONDS``, or at once when it is dated ahead of this host (its
age cannot be judged from its date; said once); a link counts only when it leads to a regular file
in the folder itself, and odd entries are skipped with a warning."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

from .repeats import said_in
from .settings import FolderSettings


class Waiting(NamedTuple):
    """An inbound file waiting to be taken; ``ahead``: dated ahead of this host's clock. (A
    tuple: watch lists the folder every few milliseconds under a flow.)"""

    name: str
    size: int
    mtime_ns: int
    ahead: bool = False


def waiting_files(settings: FolderSettings) -> list[str]:
    """Names of the inbound files to take, oldest first (none if the folder is missing). Odd
    entries are skipped with a warning."""
    return [w.name for w in list_waiting(settings)]


def waiting_entries(settings: FolderSettings) -> list[Waiting]:
    """The inbound files to take, oldest first, with what the listing saw of them."""
    return list_waiting(settings)


# A file written while the folder is being listed is dated after the listing's "now": only a
# file dated further ahead than this is dated ahead of this host (one was said hundreds of times
# a minute under a steady flow, "0.0 s ahead").
AHEAD_TOLERANCE_NS = 1_000_000_000


def list_waiting(settings: FolderSettings, warn: bool = True) -> list[Waiting]:
    """``waiting_entries``; odd entries said only when ``warn``. A file dated ahead of this host
    is taken (``INBOUND_MIN_AGE_SECONDS`` cannot be judged from its date) and said once."""
    inbound = settings.data_inbound_dir
    found: list[Waiting] = []
    if not inbound.is_dir():
        return []
    said = said_in(inbound)
    now = time.time_ns()
    youngest = now - int(settings.inbound_min_age_seconds * 1e9)
    inbound_real: Path | None = None  # resolved only for a symlink: watch looks often

    def skipped(name: str, reason: str) -> None:
        if warn:
            said.warn("inbound.entry_skipped", name, reason)

    with os.scandir(inbound) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(".json"):
                continue
            try:
                if entry.is_symlink():
                    inbound_real = inbound_real or inbound.resolve()
                    target = Path(entry.path).resolve()
                    if target.parent != inbound_real or not target.is_file():
                        skipped(name, "symlink that leads outside the folder or nowhere")
                        continue
                    info = target.stat()
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                else:
                    skipped(name, "not a regular file")
                    continue
            except OSError as exc:
                skipped(name, exc.strerror or str(exc))
                continue
            mtime = info.st_mtime_ns
            ahead = mtime > now + AHEAD_TOLERANCE_NS
            if ahead:
                seconds = (mtime - now) / 1e9
                said.once(
                    "inbound.file_dated_ahead",
                    name,
                    str(mtime),
                    ahead_seconds=round(seconds, 3),
                    reason=f"its modification time is {seconds:.1f} s ahead of this host's "
                    "clock (the writer's clock, or a copy that kept a date); taken now",
                )
            elif mtime > youngest and settings.inbound_min_age_seconds > 0:
                continue  # may still be being written; next run takes it
            found.append(Waiting(name, info.st_size, mtime, ahead))
    found.sort(key=lambda w: (w.mtime_ns, w.name))
    return found
