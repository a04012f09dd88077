"""A large inbound file over SFTP, decoded a part at a time from pieces read as the decoder
needs them, in a worker thread, so that memory stays near one part, not the file. One large
file at a time: the next waits until the last part of the one before is decoded."""

from __future__ import annotations

import asyncio
from typing import IO

from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping.reasons import reason

from ...codec import NoRecords, NotRecords, ParseError, RecordDecoder
from ...streaming import OneObject, check_shape
from ..reading import ONE_RECORD_MAX_BYTES, Parts
from ..store import FileStore
from ..store_bytes import store_file
from .archiving import Claimed


class LargeFiles:
    """The large file in hand, if any, and its parts."""

    def __init__(self, store: FileStore, decoder: RecordDecoder) -> None:
        self._store = store
        self._decoder = decoder
        self._lock = asyncio.Lock()
        self.streaming: Claimed | None = None  # the large file whose parts are being decoded

    async def first(self, claimed: Claimed, size: int) -> InboundUnit:
        """Its first unit (at most ``size`` records a part). A failure ends the file in hand
        and is raised."""
        await self._lock.acquire()
        self.streaming = claimed
        loop = asyncio.get_running_loop()
        handle = store_file(self._store, claimed.path, claimed.seen.size, loop)
        try:
            unit = await asyncio.to_thread(self._first_part, claimed, handle, size)
        except BaseException:
            handle.close()
            self.end()
            raise
        if not claimed.open_parts():
            handle.close()
            self.end()
        return unit

    async def next(self, claimed: Claimed, size: int) -> InboundUnit:
        """Its next part. A failure ends the file in hand and is raised."""
        try:
            part = await asyncio.to_thread(self._next_part, claimed, size)
        except BaseException:
            self.end()
            raise
        if not claimed.open_parts():
            self.end()
        return part

    def end(self) -> None:
        """The large file in hand is done with (decoded, given back or lost): the next may
        be read."""
        claimed, self.streaming = self.streaming, None
        if claimed is not None:
            if claimed.parts is not None:
                claimed.parts.close()
            self._lock.release()

    def _first_part(self, claimed: Claimed, handle: IO[bytes], size: int) -> InboundUnit:
        """In a worker thread. A large file of another shape than records where the mapping
        says is refused from its first bytes; one object that does not start as an envelope is
        one record, read whole up to MongoDB's limit for one document."""
        records = self._decoder.mapping.records_path
        try:
            check_shape(handle, records)
        except OneObject as exc:
            if claimed.seen.size > ONE_RECORD_MAX_BYTES:
                return refused(claimed, str(exc))
            return self._decoder.decode(handle.read()).unit(claimed.name, claimed)
        except NotRecords as exc:
            return refused(claimed, str(exc))
        except ParseError as exc:
            return refused(claimed, reason(str(exc)))
        try:
            claimed.parts = Parts(handle, self._decoder)
        except (NotRecords, NoRecords, ParseError) as exc:
            return refused(claimed, reason(str(exc)) if isinstance(exc, ParseError) else str(exc))
        return self._next_part(claimed, size)

    def _next_part(self, claimed: Claimed, size: int) -> InboundUnit:
        assert claimed.parts is not None
        decoded = claimed.parts.next(size)
        return decoded.unit(claimed.name, claimed, ends_input=claimed.parts.done)


def refused(claimed: Claimed, why: str) -> InboundUnit:
    """A large file refused as a whole, before any of its records was read."""
    return InboundUnit(claimed.name, [], [Problem("$", why)], rejected_records=1, handle=claimed)
