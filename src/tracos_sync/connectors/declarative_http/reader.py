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
  ``read.query``'s ``$orderby``), and so are ``read.max_pages`` keyset pages that brought nothing
  after the watermark (paging that does not end); a record the mapping refuses is a dead letter,
  reported once a pass, and its key (when readable) moves the watermark past it.
- With an echo guard (a description with ``[write]``), a record that is one of our own writes
  coming back (``Echoes.is_echo``: its version is one our write got back, or it holds what we
  wrote) is not handed on: it is not applied, and moves only the watermark. Every record read
  tells the guard its version (what the next write sends as ``If-Match``).
- Every other record read tells ``ErpVersions`` the ERP's last update of it, so that the sink
  never writes an older TracOS copy over it (even one the pipeline then refuses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog

from tracos_sync.domain.dates import dated_ahead, format_instant, normalise
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping

from ..client_erp.codec import ParseError, parse_json
from .description import ApiDescription
from .echoes import Echoes, content_hash
from .incremental import changes_after, changes_since
from .pages import Pages
from .paginators import Page, paginator
from .paging_spec import KeysetPaging
from .requester import ProtocolError, Requester
from .selector import expected_shape, field_at, page_records
from .versions import ErpVersions
from .watermark import PageHandle, Watermark, refuse_record

log = structlog.get_logger("tracos_sync.http")

Clock = Callable[[], datetime]


def client_text(value: Any) -> str:
    """A value of the client's record as it goes in a query (``true`` as JSON writes it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(slots=True)
class _PassState:
    """What one pass has seen so far."""

    start: Watermark
    mark: Watermark  # as far as the records read allow storing
    frozen: bool = False  # a record ahead of the moment asked: the mark moves no further
    beyond: bool = False  # a record dated beyond now + the allowance: the pass ends
    previous: tuple[datetime, int] | None = None
    seen: set[int] = field(default_factory=set)
    repeats: int = 0
    refused: set[str] = field(default_factory=set)
    fresh: int = 0  # records read after the watermark
    last_key: tuple[datetime, int] | None = None  # the last readable key of the latest page


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
        self._echoes = echoes
        self._seen = seen or ErpVersions(mapping)
        version = api.write.version if api.write is not None else None
        # Where a record read holds its version: a list answer's ETag is no record's.
        self._version_field = version.field if version is not None else None
        self._mapping = mapping
        self._requester = requester
        self._skew = clock_skew
        self._clock = clock
        self._root = httpx.URL(str(api.base_url))
        self.repeats = 0  # keys read twice in the last pass (shown by tests and logs)
        self.echoes = 0  # our own writes read back in the last pass, not handed on

    def bound(self) -> datetime:
        """The newest last update believed now."""
        return self._clock() + self._skew

    def query_values(self, key: tuple[datetime, int]) -> tuple[str, str]:
        """The (time, key) as the API's query writes them (``read.watermark_format``)."""
        stamp, number = key
        if self._api.read.watermark_format == "iso":
            return format_instant(stamp), str(number)
        written = self._mapping.client_updated(stamp)
        return client_text(written[0]), client_text(self._mapping.client_key(number))

    def start_url(self, start: Watermark) -> httpx.URL:
        if start == Watermark() and not self._api.read.filter_first_pass:
            return changes_since(self._api, None)
        since, number = self.query_values((start.since, start.after))
        if self._api.read.after:
            return changes_after(self._api, since, number)
        return changes_since(self._api, since)

    async def units(self, start: Watermark) -> AsyncIterator[InboundUnit]:
        state = _PassState(start=start, mark=start)
        read = self._api.read
        pass_paginator = paginator(
            read.paging,
            self.start_url(start),
            self._root,
            read.page_size,
            lambda _record: self._after(state),
        )
        keyset = pass_paginator.keyset_safe
        asked = normalise(self._clock())

        async def fetch(url: httpx.URL, headers: Mapping[str, str]) -> Page:
            nonlocal asked
            asked = normalise(self._clock())  # the mark never passes this moment
            page = await self._fetch(url, headers)
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
        self._seen.forget()  # what the ERP holds is read again (a date it corrected back)
        async for page in pages:
            unit, echoed = self._decode(page, pages.read, state, asked)
            self.echoes += echoed
            handle = unit.handle
            assert isinstance(handle, PageHandle)
            # A page of our echoes alone is handed on too: its records move the watermark.
            read_something = bool(unit.records or unit.problems or echoed)
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
        self.repeats = state.repeats
        if keyset and not (pages.complete or state.beyond or state.fresh):
            names = self._requester.names
            raise ProtocolError(
                f"list records: {pages.read} pages ({names.max_pages}) brought nothing after "
                f"{start.text}, key {start.after}: the API's paging does not end"
            )
        if self.echoes:
            log.info("inbound.echoes_skipped", records=self.echoes)
        if held is not None:
            handle = held.handle
            assert isinstance(handle, PageHandle)
            whole = (pages.complete or state.beyond) and not state.repeats
            if whole:
                handle.mark = state.mark
            elif state.repeats:
                log.warning(
                    "inbound.rows_shifted",
                    repeats=state.repeats,
                    detail="records changed while the pass paged (keys read twice): the "
                    "watermark stays, the next pass reads from it again (keyset paging "
                    "does not have this problem)",
                )
            yield held

    async def probe(self) -> None:
        """The first page of a first pass, asked for and read (``health``)."""
        read = self._api.read
        first = paginator(
            read.paging,
            self.start_url(Watermark()),
            self._root,
            read.page_size,
            lambda _record: self._root,
        ).first()
        await self._fetch(first, {})

    async def close(self) -> None:
        await self._requester.close()

    def _after(self, state: _PassState) -> httpx.URL:
        """The keyset query after the last readable key of the page just read."""
        if state.last_key is None:
            raise ProtocolError(
                "list records: no record of the page has a readable key and last update: "
                "keyset paging cannot go on"
            )
        since, number = self.query_values(state.last_key)
        return changes_after(self._api, since, number)

    def _last_key(self, records: list[Any]) -> tuple[datetime, int] | None:
        for item in reversed(records):
            key = self._mapping.key_of(item)
            if key is not None:
                return key
        return None

    async def _fetch(self, url: httpx.URL, headers: Mapping[str, str]) -> Page:
        what = f"list records ({self._requester.excerpt(str(url), 300)})"
        try:
            response, body = await self._requester.call(what, "GET", url, headers=headers)
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

    def _decode(
        self, page: Page, number: int, state: _PassState, asked: datetime
    ) -> tuple[InboundUnit, int]:
        """The page's unit, and how many of its records were our echoes (not in the unit)."""
        name = f"page {number} after {format_instant(state.start.since)}"
        # positions: a record TracOS refuses later is then dead-lettered under its own index.
        unit = InboundUnit(name, [], handle=PageHandle(raw=page.records), positions=[])
        now = self._clock()
        echoed = 0
        for index, item in enumerate(page.records):
            try:
                order = self._mapping.decode(item)
            except RecordRejected as exc:
                key = self._mapping.key_of(item)
                if key is not None:
                    self._seen.saw(key[1], key[0])
                if key is not None and not state.start.passes(*key):
                    self._advance(state, key, asked, now)
                refuse_record(unit, index, item, exc.problems, state.refused)
                continue
            key = (order.updated_at, order.number)
            if state.start.passes(*key):
                self._seen.saw(order.number, order.updated_at)
                continue  # read already (an API that ignores the filter)
            if state.previous is not None and key < state.previous:
                raise ProtocolError(
                    f"list records ({name}): record {index} ({self._mapping.number_path} "
                    f"{order.number}, {self._mapping.updated_path} "
                    f"{format_instant(order.updated_at)}) is out of order: the API must answer "
                    "records ordered by last update, then key (set read.query's $orderby)"
                )
            state.previous = key
            if order.number in state.seen:
                state.repeats += 1
            state.seen.add(order.number)
            self._advance(state, key, asked, now)
            if self._is_echo(order, item):
                echoed += 1
                continue
            self._seen.saw(order.number, order.updated_at)
            unit.records.append(order)
            assert unit.positions is not None
            unit.positions.append(index)
        return unit, echoed

    def _is_echo(self, order: WorkOrder, item: Any) -> bool:
        """Whether ``item`` (decoded: ``order``) is our own write coming back; either way the
        guard learns its version."""
        if self._echoes is None:
            return False
        version = None
        if self._version_field is not None:
            found = field_at(item, self._version_field)
            version = None if found is None else str(found)
        try:
            content = content_hash(self._mapping.encode, order)
        except RecordRejected:
            content = ""  # the mapping cannot write it: not ours; its version is still learnt
        key = str(self._mapping.client_key(order.number))
        return self._echoes.is_echo(key, content, version)

    def _advance(
        self, state: _PassState, key: tuple[datetime, int], asked: datetime, now: datetime
    ) -> None:
        state.fresh += 1
        stamp = key[0]
        if dated_ahead(stamp, now, self._skew):
            state.beyond = True  # handed on for the pipeline to refuse; the mark stays before it
        if state.beyond or stamp > asked:
            state.frozen = True
        if not state.frozen:
            state.mark = max(state.mark, Watermark(*key))
