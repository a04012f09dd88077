"""Files that may still be being written. One that does not parse and changed within
``INBOUND_SETTLE_SECONDS`` (or is dated ahead of this host and was not yet seen unchanged that
long) is left under its own name, not rejected, and rests: it is not looked at again before it
changes or the settle time has passed."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

from .notes import Notes, identity
from .repeats import Repeats
from .settings import FolderSettings


class StillWriting(Exception):
    """The file may still be being written: left for later, not judged now."""


class Settling:
    """The settle rules and the resting memory of one inbound folder."""

    def __init__(
        self, settings: FolderSettings, notes_root: Path, said: Repeats, dry_run: bool
    ) -> None:
        self._settings = settings
        self._said = said
        self._dry_run = dry_run
        # Files left as maybe still being written, by name: their size and mtime then, and when
        # to look again even if unchanged (monotonic). Not looked at before either comes.
        self._resting: dict[str, tuple[int, int, float]] = {}
        self._notes = Notes(notes_root, "settling")
        self._noted: set[str] = set()

    def may_be_writing(self, name: str, info: os.stat_result) -> bool:
        """Whether a file that does not parse may still be being written: it changed within the
        settle time, or it is dated ahead of this host (its mtime then tells nothing) and has
        not been seen unchanged for the settle time yet (a note kept under ``.claims/``, as a
        one-shot run looks only once)."""
        settle_ns = int(self._settings.inbound_settle_seconds * 1e9)
        if settle_ns <= 0:
            return False
        now = time.time_ns()
        if info.st_mtime_ns <= now - settle_ns:
            return False
        if info.st_mtime_ns <= now + settle_ns or self._dry_run:
            return True
        seen = identity(info)
        note = self._notes.get(name)
        if note is not None and note.get("identity") == seen:
            elapsed = now - int(note.get("seenAtNs", now))
            if elapsed >= settle_ns:
                self._noted.add(name)  # judged now: its archive forgets the note
                return False
            if elapsed >= 0:
                return True
        with contextlib.suppress(OSError):  # a hint only
            self._notes.put(name, {"identity": seen, "seenAtNs": now})
            self._noted.add(name)
        return True

    def young(self, path: Path) -> bool:
        """A regular file (not a link) changed within the settle time, or dated ahead of this
        host: its writer may not be done (one ``lstat``; False when it cannot be looked at)."""
        settle_ns = int(self._settings.inbound_settle_seconds * 1e9)
        if settle_ns <= 0:
            return False
        try:
            info = os.lstat(path)
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and info.st_mtime_ns > time.time_ns() - settle_ns

    def reason(self, info: os.stat_result, large: bool = False) -> str:
        """Why a file is left as maybe still being written."""
        ago = time.time() - info.st_mtime_ns / 1e9
        when = f"changed {ago:.1f} s ago" if ago >= 0 else f"dated {-ago:.0f} s ahead of this host"
        settle = self._settings.inbound_settle_seconds
        what = "a large file (streamed in parts)" if large else "does not parse (yet)"
        return (
            f"{what} and {when}: may still be being written; looked at again once it changes "
            f"or in {settle:g} s (INBOUND_SETTLE_SECONDS)"
        )

    def rest(self, name: str, reason: str) -> None:
        """Left as maybe still being written: not looked at again before it changes or the
        settle time has passed."""
        with contextlib.suppress(OSError):
            info = os.stat(self._settings.data_inbound_dir / name)
            until = time.monotonic() + self._settings.inbound_settle_seconds
            self._resting[name] = (info.st_size, info.st_mtime_ns, until)
        self._said.warn("inbound.file_left", name, reason, level="info")

    def resting(self, name: str, size: int, mtime_ns: int) -> bool:
        """For a listing: ``name`` was left as maybe still being written and has not changed
        (``size``, ``mtime_ns``) nor waited the settle time since."""
        resting = self._resting.get(name)
        if resting is None:
            return False
        if (size, mtime_ns) != resting[:2] or time.monotonic() >= resting[2]:
            del self._resting[name]
            return False
        return True

    def forget(self, name: str) -> None:
        """Archived: a note about its date no longer applies."""
        if name in self._noted:
            self._noted.discard(name)
            with contextlib.suppress(OSError):
                self._notes.forget(name)
