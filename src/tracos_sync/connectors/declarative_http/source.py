"""Inbound through the described API: one unit per page (``reader.ApiReader``), from the stored
watermark; once pages are applied their refused records become dead letters and the watermark
their pages allow is stored, then what the echo guard learnt (our own writes read back, the
ERP's changes after them). A dry run stores and quarantines nothing."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import structlog

from tracos_sync.domain.ports import InboundUnit

from .applied_pages import dead_letter_refused, tell_would_reject
from .echoes import Echoes
from .reader import ApiReader
from .state import ConnectorState
from .watermark import Watermark

log = structlog.get_logger("tracos_sync.http")


class ApiSource:
    """``ClientSource`` over the described API's changes."""

    def __init__(
        self,
        reader: ApiReader,
        state: ConnectorState,
        echoes: Echoes | None = None,
        *,
        dry_run: bool,
    ) -> None:
        self._reader = reader
        self._state = state
        self._echoes = echoes  # the one the reader asks; None: the API is read only
        self._dry_run = dry_run
        self._applied: Watermark | None = None

    async def prepare(self) -> None:
        self._applied = await self._state.watermark(self._reader.bound())
        if self._echoes is not None:
            await self._echoes.load()  # what earlier runs wrote: read back now, they are ours

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        assert self._applied is not None, "prepare() first"
        async for unit in self._reader.units(self._applied):
            yield [unit]

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        """The pages are applied: quarantine their refused records, then store the watermark."""
        if self._dry_run:
            tell_would_reject(units)
            return
        assert self._applied is not None
        before = self._applied
        self._applied = await dead_letter_refused(self._state, units, self._applied)
        if self._applied != before:
            await self._state.save(self._applied)
        if self._echoes is not None:
            # After the watermark: a crash in between keeps writes the ERP has moved past, and
            # a later change differs from them all the same.
            await self._echoes.save()

    async def release(self, units: Sequence[InboundUnit]) -> None:
        """Nothing to give back: the watermark did not move, so the pages come again."""

    async def close(self) -> None:
        await self._reader.close()
