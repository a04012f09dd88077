"""Inbound over ``GET /workorders``: one unit per page, from the stored watermark; once pages
are applied their refused records are quarantined and the watermark is stored."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from tracos_sync.domain.ports import ConnectorContext, InboundUnit
from tracos_sync.mapping import RecordMapping

from ..client_erp.codec import RecordDecoder
from .api import ErpApi
from .applied_pages import dead_letter_refused, tell_would_reject
from .paging import Clock, Pager, Watermark
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
            tell_would_reject(units)
            return
        assert self._applied is not None
        self._applied = await dead_letter_refused(self._state, units, self._applied)
        await self._state.save(self._applied)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        """Nothing to give back: the watermark did not move, so the pages come again."""

    async def close(self) -> None:
        await self._api.close()
