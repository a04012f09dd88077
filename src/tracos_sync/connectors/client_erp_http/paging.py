"""Reading the ERP's changes page by page from a watermark, by keyset.

The watermark is a key (``lastUpdateDate``, ``orderNo``): every record at or before it was
applied. Each request asks for the records after the newest key seen so far
(``updatedSince=T&afterOrderNo=N``: ``lastUpdateDate`` after T, or at T with a greater
``orderNo``), ordered by that key; no offsets, so a record that moves forward while we page is
still read, and a group of records at one instant, however large, is read across pages and runs.
``afterOrderNo=0`` asks for everything at or after T (the first request of an old watermark).

The stored watermark never passes the moment a page was asked for: a record dated ahead of our
clock but within ``CLIENT_CLOCK_SKEW_SECONDS`` is applied, and served again (stale) next run, so
a change dated "now" after it is not skipped. A record dated after now + the allowance (the rule
of every connector, ``dated_ahead``) is handed on like any other, and the pipeline refuses it, or
counts it stale when TracOS already holds it (our clock stepped back); it ends the run's paging
(the records after it are later still) and never moves the watermark: it is read again each run
and goes in once its date is no longer ahead.

What the API's contract does not allow stops the run's inbound with a ``ProtocolError``: an empty
page that claims more, records out of order or older than asked for, and
``CLIENT_API_MAX_PAGES`` pages that brought nothing new. Records at or before the cursor (an ERP
that ignores ``afterOrderNo``, a record sent twice) are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from tracos_sync.domain.dates import dated_ahead, format_instant, normalise
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit

from ..client_erp.codec import RecordDecoder
from .api import ErpApi, ProtocolError
from .versions import ErpVersions

log = structlog.get_logger("tracos_sync.http")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True, order=True)
class Watermark:
    """Everything up to the key (``since``, ``after``) was read."""

    since: datetime = EPOCH
    after: int = 0  # 0: nothing at ``since`` was read yet

    @property
    def text(self) -> str:
        return format_instant(self.since)

    def passes(self, stamp: datetime, number: int) -> bool:
        """The record keyed (``stamp``, ``number``) is at or before the watermark."""
        return (stamp, number) <= (self.since, self.after)


def fingerprint(payload: Any) -> str:
    """Identity of a payload: the same record sent again is the same refusal."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


@dataclass(slots=True)
class PageHandle:
    """What ``complete`` needs of a page: its raw records, and those refused while decoding."""

    raw: list[Any] = field(default_factory=list)
    refused: dict[int, Any] = field(default_factory=dict)
    mark: Watermark = field(default_factory=Watermark)  # to store once the page is applied


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
        self._erp = erp or ErpVersions(decoder.mapping)
        self._api = api
        self._decoder = decoder
        self._max_pages = max_pages
        self._skew = clock_skew
        self._clock = clock

    def bound(self) -> datetime:
        """The newest ``lastUpdateDate`` believed now."""
        return self._clock() + self._skew

    async def pages(self, start: Watermark) -> AsyncGenerator[InboundUnit, None]:
        cursor, read = start, 0
        self._erp.forget()
        refused: set[str] = set()  # a record refused once this run is not reported again
        while True:
            if read == self._max_pages:
                self._page_limit(start, cursor, read)
                return
            asked = Watermark(normalise(self._clock()))  # never stored past this moment
            listing = await self._api.list_page(cursor.text, cursor.after)
            read += 1
            if not listing.items and listing.has_more:
                raise ProtocolError(
                    f"list work orders (updatedSince={cursor.text} afterOrderNo={cursor.after}): "
                    "the API answered an empty page that claims more (hasMore: true)"
                )
            unit, moved, beyond = self._decode(listing.items, cursor, read, refused)
            assert isinstance(unit.handle, PageHandle)
            unit.handle.mark = max(start, min(moved, asked))
            if unit.records or unit.problems:
                yield unit
            if not listing.has_more or beyond:
                return
            cursor = moved

    def _page_limit(self, start: Watermark, cursor: Watermark, read: int) -> None:
        if cursor == start:
            raise ProtocolError(
                f"list work orders: {read} pages (CLIENT_API_MAX_PAGES) brought nothing new "
                f"after {start.text} orderNo {start.after}: the API's paging does not end"
            )
        log.warning(
            "inbound.page_limit",
            pages=read,
            watermark=cursor.text,
            detail="CLIENT_API_MAX_PAGES reached; the rest is read on the next run",
        )

    def _decode(
        self, items: list[Any], cursor: Watermark, page: int, refused: set[str]
    ) -> tuple[InboundUnit, Watermark, bool]:
        """The page's unit, the key of the newest record in it (the next request starts after
        it), and whether it reached a record dated beyond now + the allowance."""
        name = f"page {page} since {cursor.text}"
        # positions: a record TracOS refuses later is then dead-lettered under its own index.
        unit = InboundUnit(name, [], handle=PageHandle(raw=items), positions=[])
        now = self._clock()
        moved, previous, beyond = cursor, Watermark(cursor.since), False
        for index, item in enumerate(items):
            try:
                order = self._decoder.decode_record(item)
            except RecordRejected as exc:
                key = self._erp.saw_raw(item)
                if key is not None and not moved.passes(*key):
                    moved = Watermark(*key)  # dead-lettered: the cursor passes it
                refuse_record(unit, index, item, exc.problems, refused)
                continue
            self._erp.saw(order.number, order.updated_at)
            stamp, number = order.updated_at, order.number
            if stamp < cursor.since or Watermark(stamp, number) < previous:
                raise ProtocolError(
                    f"list work orders ({name}): record {index} (lastUpdateDate "
                    f"{format_instant(stamp)}) is "
                    + ("older than updatedSince" if stamp < cursor.since else "out of order")
                    + ": the API must answer records after (updatedSince, afterOrderNo), "
                    "ordered by (lastUpdateDate, orderNo)"
                )
            previous = Watermark(stamp, number)
            if moved.passes(stamp, number):
                continue  # read already (an ERP that ignores afterOrderNo; a record sent twice)
            if beyond or dated_ahead(stamp, now, self._skew):
                beyond = True  # handed on for the pipeline to refuse; the cursor stays before it
            else:
                moved = previous
            unit.records.append(order)
            assert unit.positions is not None
            unit.positions.append(index)
        return unit, moved, beyond


def refuse_record(
    unit: InboundUnit, index: int, item: Any, problems: list[Problem], refused: set[str]
) -> None:
    """Record ``item`` (at ``index`` of ``unit``'s page) as refused with ``problems``, once per
    content in ``refused`` (a record refused once in a run is not reported again); both HTTP
    readers refuse through it."""
    key = fingerprint(item)
    if key in refused:
        return
    refused.add(key)
    unit.rejected_records += 1
    unit.problems += [Problem(p.path, p.reason, index) for p in problems]
    handle = unit.handle
    assert isinstance(handle, PageHandle)
    handle.refused[index] = item
