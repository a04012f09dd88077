"""Reading the ERP's changes page by page from a watermark.

The watermark is the newest ``lastUpdateDate`` applied, with the numbers applied at exactly that
instant (the API's ``updatedSince`` is inclusive: those come back and are skipped, and a record
changed in the same millisecond is not lost). ``Watermark.advance`` is the one rule that moves it,
used both to page (keyset: each request asks for what changed since the newest record seen, so a
record updated while we page moves forward and is still read) and to store it once pages are
applied.

A record dated after now + ``CLIENT_CLOCK_SKEW_SECONDS`` is refused (quarantined with that
reason) and never moves the watermark: one record from a wrong clock cannot hide every later
change. It is read again on each run (its date is still ahead of the watermark) and goes in once
its date is no longer in the future or the ERP corrects it.

What the API's contract does not allow stops the run's inbound with a ``ProtocolError``: an empty
page that claims more, records out of order or older than asked for (keyset paging would skip
records), and more than ``CLIENT_API_MAX_PAGES`` pages that bring nothing new.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import InboundUnit

from ..client_erp.codec import RecordDecoder
from .api import ErpApi, ProtocolError
from .versions import ErpVersions

log = structlog.get_logger("tracos_sync.http")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Watermark:
    since: datetime = EPOCH
    at: frozenset[int] = frozenset()

    @property
    def text(self) -> str:
        return format_instant(self.since)

    def covers(self, order: WorkOrder) -> bool:
        """Applied already, at the watermark itself."""
        return order.updated_at == self.since and order.number in self.at

    def advance(self, orders: Iterable[WorkOrder]) -> Watermark:
        """The watermark once ``orders`` are applied: the newest instant, and the numbers at it."""
        since, at = self.since, set(self.at)
        for order in orders:
            if order.updated_at > since:
                since, at = order.updated_at, {order.number}
            elif order.updated_at == since:
                at.add(order.number)
        return Watermark(since, frozenset(at))


def fingerprint(payload: Any) -> str:
    """Identity of a payload: the same record sent again is the same refusal."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


@dataclass(slots=True)
class PageHandle:
    """What ``complete`` needs of a page: its raw records, and those refused while decoding."""

    raw: list[Any] = field(default_factory=list)
    refused: dict[int, Any] = field(default_factory=dict)


class Pager:
    """The pages of one run, as ``InboundUnit``s (one per page with something in it)."""

    def __init__(
        self,
        api: ErpApi,
        decoder: RecordDecoder,
        *,
        max_pages: int,
        clock_skew: timedelta,
        clock: Clock,
        erp: ErpVersions | None = None,
    ) -> None:
        self._erp = erp or ErpVersions()
        self._api = api
        self._decoder = decoder
        self._max_pages = max_pages
        self._skew = clock_skew
        self._clock = clock

    def bound(self) -> datetime:
        """The newest ``lastUpdateDate`` believed now."""
        return self._clock() + self._skew

    async def pages(self, start: Watermark) -> AsyncGenerator[InboundUnit, None]:
        cursor, page, read = start, 1, 0
        refused: set[str] = set()  # a record refused once this run is not reported again
        while True:
            if read == self._max_pages:
                self._page_limit(start, cursor, read)
                return
            listing = await self._api.list_page(cursor.text, page)
            read += 1
            if not listing.items and listing.has_more:
                raise ProtocolError(
                    f"list work orders (updatedSince={cursor.text} page={page}): the API "
                    "answered an empty page that claims more (hasMore: true)"
                )
            unit = self._decode(listing.items, cursor, page, refused)
            if unit.records or unit.problems:
                yield unit
            if not listing.has_more:
                return
            moved = cursor.advance(unit.records)
            page = 1 if moved.since > cursor.since else page + 1
            cursor = moved

    def _page_limit(self, start: Watermark, cursor: Watermark, read: int) -> None:
        if cursor == start:
            raise ProtocolError(
                f"list work orders: {read} pages (CLIENT_API_MAX_PAGES) brought nothing new "
                f"since {start.text}: the API's paging does not end"
            )
        log.warning(
            "inbound.page_limit",
            pages=read,
            watermark=cursor.text,
            detail="CLIENT_API_MAX_PAGES reached; the rest is read on the next run",
        )

    def _decode(
        self, items: list[Any], cursor: Watermark, page: int, refused: set[str]
    ) -> InboundUnit:
        name = f"page {page} since {cursor.text}"
        # positions: a record TracOS refuses later is then dead-lettered under its own index.
        unit = InboundUnit(name, [], handle=PageHandle(raw=items), positions=[])
        bound = self.bound()
        previous: datetime | None = None
        for index, item in enumerate(items):
            try:
                order = self._decoder.decode_record(item)
            except RecordRejected as exc:
                self._erp.saw_raw(item)
                self._refuse(unit, index, item, exc.problems, refused)
                continue
            self._erp.saw(order.number, order.updated_at)
            stamp = order.updated_at
            if stamp < cursor.since or (previous is not None and stamp < previous):
                raise ProtocolError(
                    f"list work orders ({name}): record {index} (lastUpdateDate "
                    f"{format_instant(stamp)}) is "
                    + ("older than updatedSince" if stamp < cursor.since else "out of order")
                    + ": the API must answer records changed since updatedSince, oldest first"
                )
            previous = stamp
            if cursor.covers(order):
                continue
            if stamp > bound:
                reason = (
                    f"{format_instant(stamp)} is in the future (after now + "
                    f"{self._skew.total_seconds():g}s CLIENT_CLOCK_SKEW_SECONDS): refused until "
                    "then; it does not move the watermark"
                )
                self._refuse(unit, index, item, [Problem("$.lastUpdateDate", reason)], refused)
                continue
            unit.records.append(order)
            assert unit.positions is not None
            unit.positions.append(index)
        return unit

    @staticmethod
    def _refuse(
        unit: InboundUnit, index: int, item: Any, problems: list[Problem], refused: set[str]
    ) -> None:
        key = fingerprint(item)
        if key in refused:
            return
        refused.add(key)
        unit.rejected_records += 1
        unit.problems += [Problem(p.path, p.reason, index) for p in problems]
        handle = unit.handle
        assert isinstance(handle, PageHandle)
        handle.refused[index] = item
