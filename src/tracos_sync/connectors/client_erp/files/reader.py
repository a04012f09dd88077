"""Turning a file in hand into units: a small file is read and decoded whole; a large one comes
as several parts (at most a batch of records each) and is archived, or rejected with the problems
of every part, after its last part. A file that does not parse and may still be being written is
left for later, not judged now. A file that says it is one page of a paged export (a next link
beside its records) is taken, with a warning."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import structlog

from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping
from tracos_sync.mapping.reasons import reason

from ..codec import Decoded, NoRecords, NotRecords, ParseError, RecordDecoder
from ..envelopes import shown_link
from ..streaming import OneObject, check_shape
from .reading import ONE_RECORD_MAX_BYTES, STREAM_MIN_BYTES, Held, Parts, open_input, unchanged
from .settings import FolderSettings
from .settling import Settling, StillWriting

log = structlog.get_logger("tracos_sync.files")


class UnitReader:
    """Reads and decodes the files of one inbound folder; holds the large file whose parts are
    being handed out. ``leave`` gives back a file left part-way as maybe still being written
    (``None`` for a dry run: nothing was claimed)."""

    def __init__(
        self,
        settings: FolderSettings,
        mapping: RecordMapping,
        settling: Settling,
        leave: Callable[[Held], None] | None,
    ) -> None:
        self._settings = settings
        self._inbound = settings.data_inbound_dir
        self._decoder = RecordDecoder(mapping)
        self._settling = settling
        self._leave = leave
        self._open_parts: Held | None = None  # a large file whose parts are being handed out

    def read(self, name: str, path: Path, size: int) -> InboundUnit:
        """The file's unit (its first part when it is large). Raises ``OSError`` (cannot be
        read) or ``StillWriting``."""
        fd, info = open_input(path, self._inbound)
        held = Held(name, path, None if path.is_symlink() else info)
        handle = os.fdopen(fd, "rb")
        if info.st_size > self._settings.max_file_bytes:
            handle.close()
            limit = self._settings.max_file_bytes
            too_big = Problem("$", f"file is larger than MAX_FILE_BYTES={limit}; not read")
            return InboundUnit(name, [], [too_big], rejected_records=1, handle=held)
        # A large array (or envelope of records, when the mapping says where they are) is
        # streamed: its records are applied part by part before its end is read. A large file
        # of another shape is refused from its first bytes, never read whole; but one object
        # that does not start as an envelope is one record (read whole, up to MongoDB's limit).
        if info.st_size > STREAM_MIN_BYTES:
            try:
                check_shape(handle, self._decoder.mapping.records_path)
            except OneObject as exc:
                if info.st_size > ONE_RECORD_MAX_BYTES:
                    handle.close()
                    return _refused(held, str(exc))
            except NotRecords as exc:
                handle.close()
                return _refused(held, str(exc))
            except ParseError as exc:
                handle.close()
                if self._settling.may_be_writing(name, info):
                    raise StillWriting(self._settling.reason(info)) from exc
                return _refused(held, reason(str(exc)))
            else:
                return self._first_part(held, handle, info, size)
        with handle:
            raw = handle.read(self._settings.max_file_bytes + 1)
            after = os.fstat(handle.fileno())
        decoded = self._decoder.decode(raw)
        if not unchanged(info, after) or (
            decoded.unparsable and self._settling.may_be_writing(name, info)
        ):
            raise StillWriting(self._settling.reason(info))
        self._say_partial(name, decoded.next_link)
        if decoded.unknown_fields:
            fields = sorted(decoded.unknown_fields)
            log.debug("inbound.unknown_fields_ignored", file=name, fields=fields)
        return decoded.unit(name, held)

    def _first_part(
        self, held: Held, handle: IO[bytes], info: os.stat_result, size: int
    ) -> InboundUnit:
        """A large file of records: taken only once its writer has left it alone for the settle
        time (a part-written export may end on a whole record and look complete), its envelope
        read before its first record."""
        if self._settling.may_be_writing(held.name, info):
            handle.close()
            raise StillWriting(self._settling.reason(info, large=True))
        try:
            held.parts = Parts(handle, self._decoder)
        except (NotRecords, NoRecords, ParseError) as exc:
            handle.close()
            return _refused(held, reason(str(exc)) if isinstance(exc, ParseError) else str(exc))
        self._say_partial(held.name, held.parts.next_link)
        self._open_parts = held
        return self.next_part(size)

    @staticmethod
    def _say_partial(name: str, link: str | None) -> None:
        """Once per file read: its records are taken (they are valid), but the export it is a
        page of is not complete until the ERP's next pages are sent too."""
        if link is not None:
            log.warning(
                "inbound.partial_export",
                file=name,
                next=shown_link(link),
                detail="the file says more records follow (a paged export): its records are "
                "taken; the next pages must be exported as files too",
            )

    def has_open_parts(self) -> bool:
        """A large file is in hand whose last part has not been handed out yet."""
        return self._open_parts is not None

    def open_name(self) -> str | None:
        """The name of the large file in hand, if any."""
        return self._open_parts.name if self._open_parts is not None else None

    def take_open_parts(self) -> Held | None:
        """The large file in hand, no longer held here (its last part will not be asked for)."""
        held, self._open_parts = self._open_parts, None
        return held

    def next_part(self, size: int) -> InboundUnit:
        """The next part of the large file in hand."""
        held = self._open_parts
        assert held is not None
        assert held.parts is not None
        decoded = held.parts.next(size)
        if held.parts.done:
            self._open_parts = None
        return self._part_unit(held, decoded)

    def _part_unit(self, held: Held, decoded: Decoded) -> InboundUnit:
        assert held.parts is not None
        if decoded.unparsable and self._left_writing(held):
            # Its records so far are applied (again next time: stale); the file is not done.
            return InboundUnit(held.name, decoded.records, [], 0, held, decoded.positions, False)
        return decoded.unit(held.name, held, ends_input=held.parts.done)

    def _left_writing(self, held: Held) -> bool:
        """A large file whose bytes stop being JSON part-way and that may still be being
        written goes back now (not rejected)."""
        if held.opened is None:
            return False
        try:  # as it is now: a writer back at it since it was opened has touched it
            now = os.stat(held.path, follow_symlinks=False)
        except OSError:
            now = held.opened
        if not self._settling.may_be_writing(held.name, now):
            return False
        held.left = True
        if self._leave is not None:
            self._leave(held)
        return True


def _refused(held: Held, why: str) -> InboundUnit:
    """A large file refused as a whole, before any of its records was read."""
    return InboundUnit(held.name, [], [Problem("$", why)], rejected_records=1, handle=held)
