"""One pass over the described API from a watermark, as ``InboundUnit``s (one per page with
something in it), and the watermark each unit may store once it is applied.

The watermark is a key (last update, number) as the mapping reads them: every record at or
before it was applied. A pass starts with ``read.after`` filled from it (or ``read.since`` when
the description has no ``after``; nothing: the first pass reads every record), the time and key
written as the mapping writes them (``client_updated``, ``client_key``).

- **keyset** paging restarts each page from the last (time, key) read: each page's unit stores
  the watermark as far as that page.
- **every other style** counts rows, and a record changed while we page shifts the rows after
  it (one record is never read in that pass; the one that moved is read twice). The watermark
  moves only with the last page of a *complete* pass in which no key was read twice; after a
  pass with repeats the next one starts from the same watermark (what it reads again is stale).
- The stored watermark never passes the moment a page was asked for: a record dated ahead of
  our clock (within ``CLIENT_CLOCK_SKEW_SECONDS``) is applied, and read again next pass, so that
  a change dated "now" after it is not skipped. A record dated beyond now + that allowance is
  handed on like any other and the pipeline refuses it alone; the watermark stays before it and
  the pass ends with its page (what follows is later still).
- Records at or before the watermark are skipped (an API that ignores the filter); records out
  of (time, key) order are a ``ProtocolError`` (the watermark rule needs the order: set
  ``read.query``'s ``$orderby``; both compare as the ERP orders, ``order.ErpOrder``: the last
  update at the precision the ERP wrote it, the key as it writes it), and so are
  ``read.max_pages`` keyset pages that brought nothing after the watermark (paging that does
  not end); a record the mapping refuses is a dead letter, reported once a pass, and its key
  (when readable) moves the watermark past it.
- With an echo guard, a record that is one of our own writes coming back (``Echoes.read``: its
  version is the one our write got back and it holds what we wrote; without versions, it holds
  what our latest write sent) is not handed on: it is not applied, and moves only the watermark.
  Every record read tells the guard its version (what the next write sends as ``If-Match``).
- A record read again with the version last applied from it (one dated ahead of our clock, read
  every pass until the watermark passes it) is not applied again, which would overwrite a TracOS
  edit made since: counted stale (``InboundUnit.stale``), it moves only the watermark.
- A change to a record we wrote (not our echo) was made in the ERP after our write, whatever its
  clock says: its last update is handed on as at least just after TracOS's copy we wrote
  (``readings.after_our_write``): an ERP clock behind ours does not make it stale. A TracOS
  edit made since our write is later still: then the two stamps decide, as for any record.
- Every other record read tells ``ErpVersions`` the ERP's last update of it, so that the sink
  never writes an older TracOS copy over it (even one the pipeline then refuses).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from tracos_sync.domain.dates import dated_ahead, format_instant, normalise
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping

from ..client_erp.codec import ParseError, parse_json
from .description import ApiDescription
from .echoes import Echoes
from .incremental import PassQueries
from .order import ErpOrder, Rank, finer_digits
from .pages import Pages
from .paginators import Page, paginator
from .paging_spec import KeysetPaging
from .readings import Readings, after_our_write
from .requester import ProtocolError, Requester
from .selector import expected_shape, page_records
from .versions import ErpVersions
from .watermark import PageHandle, Watermark, last_held, refuse_record

log = structlog.get_logger("tracos_sync.http")

Clock = Callable[[], datetime]


@dataclass(slots=True)
class _PassState:
    """What one pass has seen so far."""

    start: Watermark
    mark: Watermark  # as far as the records read allow storing
    start_rank: Rank  # ``start`` and ``mark`` as the ERP orders them
    mark_rank: Rank
    frozen: bool = False  # a record ahead of the moment asked: the mark moves no further
    beyond: bool = False  # a record dated beyond now + the allowance: the pass ends
    previous: Rank | None = None
    seen: set[int] = field(default_factory=set)
    repeats: int = 0
    refused: set[str] = field(default_factory=set)
    fresh: int = 0  # records read after the watermark
    # The last readable key of the latest page, with its finer digits.
    last_key: tuple[datetime, int, str] | None = None


class ApiReader:
    """The passes of one source; ``units(start)`` is one pass."""

    def __init__(
        self,
        api: ApiDescription,
        mapping: RecordMapping,
        requester: Requester,
        *,
        clock_skew: timedelta,
        clock: Clock,
        echoes: Echoes | None = None,
        seen: ErpVersions | None = None,
    ) -> None:
        self._api = api
        self._seen = seen or ErpVersions(mapping)
        version = api.write.version if api.write is not None else None
        # Where a record read holds its version: a list answer's ETag is no record's.
        self._readings = Readings(echoes, mapping, version.field if version is not None else None)
        self._mapping = mapping
        self._order = ErpOrder(mapping)
        self._queries = PassQueries(api, mapping)
        self._requester = requester
        self._skew = clock_skew
        self._clock = clock
        self._root = httpx.URL(str(api.base_url))
        self.repeats = 0  # keys read twice in the last pass (shown by tests and logs)
        self.echoes = 0  # our own writes read back in the last pass, not handed on
        self.read_again = 0  # versions applied already, read again in the last pass

    def bound(self) -> datetime:
        """The newest last update believed now."""
        return self._clock() + self._skew

    async def units(self, start: Watermark) -> AsyncIterator[InboundUnit]:
        begun = self._order.of(start)
        state = _PassState(start=start, mark=start, start_rank=begun, mark_rank=begun)
        read = self._api.read
        pass_paginator = paginator(
            read.paging,
            self._queries.start(start),
            self._root,
            read.page_size,
            lambda _record: self._after(state),
        )
        keyset = pass_paginator.keyset_safe
        asked = normalise(self._clock())

        asked_at: dict[str, datetime] = {}  # per page (the next is asked for ahead)

        async def fetch(
            url: httpx.URL, headers: Mapping[str, str], sent: asyncio.Event | None
        ) -> Page:
            asked_at[str(url)] = normalise(self._clock())  # its mark never passes this moment
            page = await self._fetch(url, headers, sent)
            state.last_key = self._last_key(page.records)
            return page

        pages = Pages(
            pass_paginator,
            fetch,
            root=self._root,
            max_pages=read.max_pages,
            shown=self._requester.excerpt,
        )
        held: InboundUnit | None = None  # with paging that is not keyset-safe, one page late
        self.echoes = 0
        self.read_again = 0
        self._seen.forget()  # what the ERP holds is read again (a date it corrected back)
        stream = aiter(pages)  # closed however the pass ends: no page fetched ahead is left
        try:
            async for page in stream:
                asked = asked_at.pop(str(page.url), asked)
                unit = self._decode(page, pages.read, state, asked)
                self.echoes += unit.echoes
                handle = unit.handle
                assert isinstance(handle, PageHandle)
                # A page of our echoes alone is handed on too: its records move the watermark.
                read_something = bool(unit.records or unit.problems or unit.stale or unit.echoes)
                if keyset:
                    handle.mark = state.mark
                    if read_something:
                        yield unit
                else:
                    handle.mark = start
                    if read_something:
                        if held is not None:
                            yield held
                        held = unit
                if state.beyond:
                    break
        finally:
            await stream.aclose()
        self.repeats = state.repeats
        if keyset and not (pages.complete or state.beyond or state.fresh):
            names = self._requester.names
            raise ProtocolError(
                f"list records: {pages.read} pages ({names.max_pages}) brought nothing after "
                f"{start.text}, key {start.after}: the API's paging does not end"
            )
        self._say_what_was_skipped()
        if held is not None:
            yield last_held(held, pages.complete or state.beyond, state.mark, state.repeats)

    def _say_what_was_skipped(self) -> None:
        if self.echoes:  # counted in the summary (echoes=), once the pages are applied
            log.debug("inbound.echoes_skipped", records=self.echoes)
        if self.read_again:
            log.info(
                "inbound.read_again",
                records=self.read_again,
                detail="records dated ahead of our clock, read again with the version applied "
                "already: counted stale, not applied again",
            )

    async def probe(self) -> list[Any]:
        """The first page of a first pass, asked for and read (``health``): its records."""
        read = self._api.read
        first = paginator(
            read.paging,
            self._queries.start(Watermark()),
            self._root,
            read.page_size,
            lambda _record: self._root,
        ).first()
        return (await self._fetch(first, {})).records

    async def close(self) -> None:
        await self._requester.close()

    def _after(self, state: _PassState) -> httpx.URL:
        """The keyset query after the last readable key of the page just read."""
        if state.last_key is None:
            raise ProtocolError(
                "list records: no record of the page has a readable key and last update: "
                "keyset paging cannot go on"
            )
        return self._queries.after(*state.last_key)

    def _last_key(self, records: list[Any]) -> tuple[datetime, int, str] | None:
        for item in reversed(records):
            key = self._mapping.key_of(item)
            if key is not None:
                return (*key, self._finer(item))
        return None

    def _finer(self, item: Any) -> str:
        return finer_digits(self._mapping.updated_raw(item))

    async def _fetch(
        self, url: httpx.URL, headers: Mapping[str, str], sent: asyncio.Event | None = None
    ) -> Page:
        what = f"list records ({self._requester.excerpt(str(url), 300)})"
        seen = {} if sent is None else {"extensions": {"trace": _setting_when_sent(sent)}}
        try:
            response, body = await self._requester.call(what, "GET", url, headers=headers, **seen)
        except RecordRejected as exc:
            raise ProtocolError(f"{what}: refused: {exc}") from None
        try:
            document = parse_json(body)
        except ParseError as exc:
            raise ProtocolError(
                f"{what}: the answer is not JSON ({exc}; Content-Type "
                f"{response.headers.get('Content-Type', 'none')!r}, "
                f"begins {self._requester.excerpt(body)!r})"
            ) from None
        read = self._api.read
        more = read.paging.more_path if isinstance(read.paging, KeysetPaging) else None
        records = page_records(document, read.records, more)
        if records is None:
            shape = expected_shape(read.records, more)
            hint = self._requester.names.records
            raise ProtocolError(
                f"{what}: expected {shape}, got {self._requester.excerpt(body)!r}"
                + (f" ({hint} says where the records are)" if hint else "")
            )
        return Page(url, response, document, records)

    def _decode(self, page: Page, number: int, state: _PassState, asked: datetime) -> InboundUnit:
        """The page's unit; its ``echoes`` count the records that were ours (not in it)."""
        name = f"page {number} after {format_instant(state.start.since)}"
        # positions: a record TracOS refuses later is then dead-lettered under its own index.
        unit = InboundUnit(name, [], handle=PageHandle(raw=page.records), positions=[])
        now = self._clock()
        for index, item in enumerate(page.records):
            try:
                order = self._mapping.decode(item)
            except RecordRejected as exc:
                key = self._mapping.key_of(item)
                if key is not None:
                    self._seen.saw(key[1], key[0])
                    finer = self._finer(item)
                    rank = self._order.rank(*key, finer)
                    if rank > state.start_rank:
                        self._advance(state, Watermark(*key, finer), rank, asked=asked, now=now)
                refuse_record(unit, index, item, exc.problems, state.refused)
                continue
            key = (order.updated_at, order.number)
            finer = self._finer(item)
            rank = self._order.rank(*key, finer)
            if rank <= state.start_rank:
                self._seen.saw(order.number, order.updated_at)
                continue  # read already (an API that ignores the filter)
            if state.previous is not None and rank < state.previous:
                where = f"list records ({name}): record {index}"
                said = self._order.out_of_order(where, item, order.number, self._api.read.query)
                raise ProtocolError(said)
            state.previous = rank
            if order.number in state.seen:
                state.repeats += 1
            state.seen.add(order.number)
            self._advance(state, Watermark(*key, finer), rank, asked=asked, now=now)
            ahead = key[0] > asked  # the watermark stays before it: the next pass reads it again
            reading = self._readings.of(order, item, ahead=ahead)
            if reading.echo:
                unit.echoes += 1
                continue
            if reading.read_again:
                unit.stale += 1
                self.read_again += 1
                continue
            if reading.after_our_write is not None:
                order = after_our_write(order, reading.after_our_write)
            self._seen.saw(order.number, order.updated_at)
            unit.records.append(order)
            assert unit.positions is not None
            unit.positions.append(index)
            if ahead:
                handle = unit.handle
                assert isinstance(handle, PageHandle)
                handle.applied[index] = (self._readings.key(order), reading.applied_as, key[0])
        return unit

    def _advance(
        self, state: _PassState, mark: Watermark, rank: Rank, *, asked: datetime, now: datetime
    ) -> None:
        """A record read after the start, ``mark`` its key: the mark moves to it unless frozen."""
        state.fresh += 1
        stamp = mark.since
        if dated_ahead(stamp, now, self._skew):
            state.beyond = True  # handed on for the pipeline to refuse; the mark stays before it
        if state.beyond or stamp > asked:
            state.frozen = True
        if not state.frozen and rank > state.mark_rank:
            state.mark, state.mark_rank = mark, rank


def _setting_when_sent(sent: asyncio.Event) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore ``trace`` callback that sets ``sent`` once the request is written."""

    async def trace(event: str, _info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            sent.set()

    return trace
