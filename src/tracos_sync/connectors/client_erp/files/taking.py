"""Taking files: a batch of them in order, a suspect alone and a large file part by part
(``FileTaker.take``); each one claimed and read (a file whose writer is long done), or read
where it is and claimed only once it parses (one changed within the settle time), or left
where it is, resting, when it may still be being written or cannot be read."""

from __future__ import annotations

import os
from pathlib import Path

from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping

from .claiming import Claimer
from .reader import UnitReader
from .reading import Held, unchanged
from .repeats import Repeats
from .settings import FolderSettings
from .settling import Settling, StillWriting


class FileTaker:
    """Claims and reads the files of one inbound folder (in a dry run only reads them in
    place); ``reader`` holds the large file in hand, if any, part by part."""

    def __init__(
        self,
        settings: FolderSettings,
        mapping: RecordMapping,
        claimer: Claimer,
        settling: Settling,
        *,
        said: Repeats,
        dry_run: bool,
    ) -> None:
        self._inbound = settings.data_inbound_dir
        self._claimer = claimer
        self._settling = settling
        self._said = said
        self._dry_run = dry_run
        self.reader = UnitReader(
            settings, mapping, settling, None if dry_run else self.leave_writing
        )

    def take(self, names: list[str], max_records: int, clear: bool) -> list[InboundUnit]:
        """Claim and decode files from ``names`` (oldest last) until they hold ``max_records``
        records (a file with no valid record counts as one) or the names run out. A large file's
        parts go one per batch; a suspect (in hand at a crash) goes alone, and only when
        ``clear`` (nothing of this instance in hand): otherwise the take stops before it."""
        units: list[InboundUnit] = []
        total = 0
        while total < max_records:
            if self.has_open_parts():
                alone = self.parts_of_suspect()
                part = self.next_part(max_records - total)
                units.append(part)
                total += max(len(part.records), 1)
                if self.has_open_parts() or alone:
                    break
                continue
            if not names:
                break
            name = names[-1]
            if self.suspect(name) and (units or not clear):
                break  # alone, in a later batch
            names.pop()
            unit = self.claim_and_read(name, max_records - total)
            if unit is None:
                continue
            units.append(unit)
            total += max(len(unit.records), 1)
            if self.has_open_parts() or self.suspect(name):
                break
        return units

    def suspect(self, name: str) -> bool:
        """In hand when an instance died: taken alone."""
        return self._claimer.suspect(name)

    def has_open_parts(self) -> bool:
        """A large file is in hand whose last part has not been handed out yet."""
        return self.reader.has_open_parts()

    def parts_of_suspect(self) -> bool:
        """The large file in hand is a suspect."""
        name = self.reader.open_name()
        return name is not None and self._claimer.suspect(name)

    def next_part(self, size: int) -> InboundUnit:
        """The next part of the large file in hand."""
        return self.reader.next_part(size)

    def claim_and_read(self, name: str, size: int) -> InboundUnit | None:
        """The unit of the waiting file ``name`` (claimed unless a dry run), or ``None`` when
        it is left where it is."""
        if self._dry_run:
            return self._read_in_place(name, size)
        if self._settling.young(self._inbound / name):
            return self._judge_then_claim(name, size)
        claimed = self._claimer.claim(name)
        if claimed is None:
            return None
        try:
            return self.read_unit(name, claimed, size)
        except StillWriting as exc:
            self._claimer.put_back(claimed, name)
            self._settling.rest(name, str(exc))
            return None
        except OSError as exc:
            self._claimer.put_back(claimed, name)
            self._said.warn(
                "inbound.file_left",
                name,
                f"cannot be read ({exc.strerror or exc}); retried next run",
            )
            return None

    def _judge_then_claim(self, name: str, size: int) -> InboundUnit | None:
        """A file changed within the settle time is read where it is, and claimed only once it
        parses: a writer that reopens it by name (an append, a resumed upload) must find it
        there, not create a second file beside the one in hand. Claimed, it must still be the
        file that was read (same inode, size and mtime), or it goes back and rests."""
        unit = self._read_in_place(name, size)
        if unit is None:
            return None
        held = unit.handle
        assert isinstance(held, Held)
        claimed = self._claimer.claim(name)
        try:
            now = None if claimed is None else os.stat(claimed, follow_symlinks=False)
        except OSError:
            now = None
        if claimed is not None and held.opened is not None and now is not None:
            if unchanged(held.opened, now):
                held.path = claimed
                return unit
            self._claimer.put_back(claimed, name)
            self._settling.rest(name, "written to while it was read; taken once it settles")
        # Not ours after all (another instance took it first, or it changed): nothing was
        # applied from it; a large file's parts, if it became one, are let go.
        if self.reader.open_name() == name:
            left = self.reader.take_open_parts()
            if left is not None and left.parts is not None:
                left.parts.close()
        return None

    def _read_in_place(self, name: str, size: int) -> InboundUnit | None:
        path = self._inbound / name
        try:
            return self.read_unit(name, path, size)
        except StillWriting as exc:
            if self._dry_run:
                self._said.warn("inbound.file_left", name, str(exc))
            else:
                self._settling.rest(name, str(exc))
            return None
        except OSError as exc:
            self._said.warn("inbound.file_left", name, exc.strerror or str(exc))
            return None

    def read_unit(self, name: str, path: Path, size: int) -> InboundUnit:
        """The file's unit (its first part when it is large). Raises ``OSError`` (cannot be
        read) or ``StillWriting``."""
        return self.reader.read(name, path, size)

    def leave_writing(self, held: Held) -> None:
        """A large file left part-way as maybe still being written goes back and rests."""
        assert held.opened is not None
        self._claimer.put_back(held.path, held.name)
        self._settling.rest(held.name, self._settling.reason(held.opened))
