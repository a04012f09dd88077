"""Inbound over ``GET /workorders``: one unit per page, from the stored watermark; once pages
are applied their refused records are quarantined and the watermark is stored."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from tracos_sync.domain.ports import ConnectorContext, InboundUnit
from tracos_sync.mapping import RecordMapping

from ..client_erp.codec import RecordDecoder
from ..client_erp.told import tell_problems
from .api import ErpApi
from .paging import Clock, PageHandle, Pager, Watermark
from .settings import HttpSettings
from .state import ConnectorState
from .versions import ErpVersions

log = structlog.get_logger("tracos_sync.http")


def utc_now() -> datetime:
    return datetime.now(UTC)


class HttpSource:
    """``ClientSource`` over the ERP's listing."""

    def __init__(
        self,
        settings: HttpSettings,
        mapping: RecordMapping,
        context: ConnectorContext,
        clock: Clock = utc_now,
        erp: ErpVersions | None = None,
    ) -> None:
        self._dry_run = context.dry_run
        self._api = ErpApi(settings)
        self._pager = Pager(
            self._api,
            RecordDecoder(mapping),
            max_pages=settings.client_api_max_pages,
            clock_skew=timedelta(seconds=context.clock_skew_seconds),
            clock=clock,
            erp=erp or ErpVersions(mapping),
        )
        self._state = ConnectorState(context.state, settings.state_url())
        self._applied: Watermark | None = None

    async def prepare(self) -> None:
        self._applied = await self._state.watermark(self._pager.bound())

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        assert self._applied is not None, "prepare() first"
        async for unit in self._pager.pages(self._applied):
            yield [unit]

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        """The pages are applied: quarantine their refused records, then store the watermark."""
        if self._dry_run:
            for unit in units:  # nothing is quarantined: the log is where they are said
                if unit.problems:
                    log.warning(
                        "inbound.would_reject",
                        page=unit.name,
                        records=unit.rejected_records,
                        problems=len(unit.problems),
                    )
                    tell_problems(log, unit.problems, page=unit.name)
            return
        assert self._applied is not None
        for unit in units:
            handle = unit.handle
            assert isinstance(handle, PageHandle)
            # Refused while decoding, or by TracOS itself (``InboundUnit.refuse``).
            for index in sorted({p.record for p in unit.problems if p.record is not None}):
                payload = handle.refused.get(index, handle.raw[index])
                problems = [p for p in unit.problems if p.record == index]
                times = await self._state.refused(
                    "inbound", f"{unit.name}, record {index}", problems, payload
                )
                log.warning(
                    "inbound.record_rejected",
                    page=unit.name,
                    record=index,
                    problems=len(problems),  # every one is in the dead letter
                    first=f"{problems[0].path}: {problems[0].reason}",
                    times=times,
                )
            self._applied = max(self._applied, handle.mark)
        await self._state.save(self._applied)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        """Nothing to give back: the watermark did not move, so the pages come again."""

    async def close(self) -> None:
        await self._api.close()
