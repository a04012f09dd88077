"""The ``api`` connector's reader and source against a scripted API (``httpx.MockTransport``):
one unit per page, the watermark rule of each paging style, dates ahead of the clock, refused
records, and what a dry run leaves alone. No server, no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.builders import client_record
from tests.fakes import InMemoryConnectorStateStore
from tracos_sync.connectors.declarative_http.description import ApiDescription, load_description
from tracos_sync.connectors.declarative_http.reader import ApiReader
from tracos_sync.connectors.declarative_http.requester import Limits, ProtocolError, Requester
from tracos_sync.connectors.declarative_http.source import ApiSource
from tracos_sync.connectors.declarative_http.state import ConnectorState
from tracos_sync.connectors.declarative_http.watermark import PageHandle, Watermark
from tracos_sync.domain.dates import parse_instant
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import builtin_mapping

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
SKEW = timedelta(minutes=5)
FIRST = Watermark()  # nothing read yet
KEYSET = {"style": "keyset", "size_param": "pageSize"}
OFFSET = {"style": "offset"}


def at(day: int, hour: int = 0) -> str:
    return f"2024-05-{day:02d}T{hour:02d}:00:00.000Z"


def record(number: int, stamp: str, **overrides: Any) -> dict[str, Any]:
    return client_record(number, lastUpdateDate=stamp, **overrides)


class ScriptedApi:
    """Records after ``after=time,number`` or after ``updatedSince``, ordered by
    (last update, number), in pages of ``pageSize`` (keyset) or ``offset``/``limit``.
    ``before_answer(n)`` runs before the n-th answer (1-based): an ERP edit while we page."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.asked: list[dict[str, str]] = []
        self.before_answer: Callable[[int], None] = lambda _n: None
        self.unordered = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        self.asked.append(query)
        self.before_answer(len(self.asked))

        def key(r: dict[str, Any]) -> tuple[datetime, int]:
            return parse_instant(r["lastUpdateDate"]), r["orderNo"]

        chosen = sorted(self.records, key=key)
        if "after" in query:
            since, _, number = query["after"].partition(",")
            chosen = [r for r in chosen if key(r) > (parse_instant(since), int(number))]
        elif "updatedSince" in query:
            since = parse_instant(query["updatedSince"])
            chosen = [r for r in chosen if key(r)[0] > since]
        if "offset" in query:
            start = int(query["offset"])
            chosen = chosen[start : start + int(query["limit"])]
        else:
            chosen = chosen[: int(query["pageSize"])]
        if self.unordered:
            chosen.reverse()
        return httpx.Response(200, json={"items": chosen})


def describe(paging: dict[str, Any], size: int = 2) -> ApiDescription:
    return load_description(
        {
            "base_url": "http://erp.test/api",
            "read": {
                "path": "workorders",
                "records": "items",
                "since": {"updatedSince": "{since}"},
                # Each parameter of read.after must hold both (checked at start-up).
                "after": {"after": "{since},{number}"},
                "page_size": size,
                "paging": paging,
            },
        },
        "test",
        {},
    )


def reader(api: ScriptedApi, paging: dict[str, Any], clock: datetime = NOW) -> ApiReader:
    client = httpx.AsyncClient(transport=httpx.MockTransport(api.handle))
    requester = Requester(client, Limits(timeout=5, retry_budget=0, max_bytes=1 << 20), list)
    return ApiReader(
        describe(paging), builtin_mapping(), requester, clock_skew=SKEW, clock=lambda: clock
    )


async def one_pass(source: ApiReader, start: Watermark = FIRST) -> list[InboundUnit]:
    return [unit async for unit in source.units(start)]


def mark(unit: InboundUnit) -> Watermark:
    assert isinstance(unit.handle, PageHandle)
    return unit.handle.mark


def numbers(units: list[InboundUnit]) -> list[int]:
    return [order.number for unit in units for order in unit.records]


def key(day: int, number: int, hour: int = 0) -> Watermark:
    return Watermark(datetime(2024, 5, day, hour, tzinfo=UTC), number)


FIVE = [record(n, at(n)) for n in range(1, 6)]


async def test_keyset_pages_each_store_the_watermark_as_far_as_they_read() -> None:
    api = ScriptedApi(list(FIVE))
    units = await one_pass(reader(api, KEYSET))
    assert numbers(units) == [1, 2, 3, 4, 5]
    assert [mark(u) for u in units] == [key(2, 2), key(4, 4), key(5, 5)]
    # Each page asked for what follows the last (time, key) read, as the mapping writes them.
    assert api.asked[1] == {"after": f"{at(2)},2", "pageSize": "2"}


async def test_a_pass_resumes_after_the_stored_time_and_key() -> None:
    api = ScriptedApi(list(FIVE))
    units = await one_pass(reader(api, KEYSET), key(3, 3))
    assert numbers(units) == [4, 5]
    assert api.asked[0] == {"after": f"{at(3)},3", "pageSize": "2"}


async def test_offset_paging_stores_the_watermark_with_the_last_page_of_a_complete_pass() -> None:
    units = await one_pass(reader(ScriptedApi(list(FIVE)), OFFSET))
    assert numbers(units) == [1, 2, 3, 4, 5]
    assert [mark(u) for u in units] == [Watermark(), Watermark(), key(5, 5)]


async def test_offset_pass_that_read_a_key_twice_leaves_the_watermark_where_it_was() -> None:
    """Order 1 changes after the first page: the rows shift, order 3 is never read in this pass,
    order 1 is read twice; committing would skip order 3 for good."""
    api = ScriptedApi(list(FIVE))

    def edit_order_1(answer: int) -> None:
        if answer == 2:
            api.records[0] = record(1, at(9))

    api.before_answer = edit_order_1
    source = reader(api, OFFSET)
    units = await one_pass(source)
    assert 3 not in numbers(units) and numbers(units).count(1) == 2
    assert source.repeats == 1
    assert all(mark(u) == Watermark() for u in units)
    # The next pass, from the same watermark, reads order 3.
    assert 3 in numbers(await one_pass(reader(api, OFFSET)))


@pytest.mark.parametrize("paging", [KEYSET, OFFSET])
async def test_a_record_dated_beyond_the_allowance_is_handed_on_and_ends_the_pass(
    paging: dict[str, Any],
) -> None:
    """The pipeline refuses it alone; the watermark stays before it, so it is read again (and
    goes in once its date is no longer ahead)."""
    records = [record(1, at(1)), record(2, at(2)), record(3, "2024-06-01T13:00:00.000Z")]
    records += [record(4, "2024-06-02T00:00:00.000Z"), record(5, "2024-06-03T00:00:00.000Z")]
    api = ScriptedApi(records)
    units = await one_pass(reader(api, paging))
    assert numbers(units) == [1, 2, 3, 4]  # the pass ends with the page that reached it
    # The page after it was asked for ahead (pages are fetched one ahead) and is not handed on.
    assert len(api.asked) == 3
    assert mark(units[-1]) == key(2, 2)


async def test_a_record_ahead_of_the_clock_within_the_allowance_is_applied_not_stored() -> None:
    records = [record(1, at(1)), record(2, "2024-06-01T12:02:00.000Z"), record(3, at(31))]
    units = await one_pass(reader(ScriptedApi(records), KEYSET))
    assert numbers(units) == [1, 3, 2]
    assert mark(units[-1]) == key(31, 3)


async def test_a_refused_record_is_reported_once_and_the_watermark_passes_it() -> None:
    records = [record(1, at(1)), record(2, at(2), isDone="yes"), record(3, at(3))]
    units = await one_pass(reader(ScriptedApi(records), KEYSET))
    assert numbers(units) == [1, 3]
    assert sum(u.rejected_records for u in units) == 1
    refused = [p for u in units for p in u.problems]
    assert refused and all(p.record == 1 for p in refused)  # its index in its page
    assert mark(units[-1]) == key(3, 3)


async def test_records_out_of_order_are_a_protocol_error() -> None:
    api = ScriptedApi(list(FIVE))
    api.unordered = True
    with pytest.raises(ProtocolError, match="out of order"):
        await one_pass(reader(api, KEYSET))


async def test_records_at_or_before_the_watermark_are_skipped() -> None:
    """An API that ignores the filter sends everything again: nothing old goes through."""
    api = ScriptedApi(list(FIVE))
    answer = api.handle

    def ignoring_the_filter(request: httpx.Request) -> httpx.Response:
        params = request.url.params.remove("updatedSince").remove("after")
        return answer(httpx.Request("GET", request.url.copy_with(params=params)))

    api.handle = ignoring_the_filter  # type: ignore[method-assign]
    assert numbers(await one_pass(reader(api, OFFSET), key(3, 3))) == [4, 5]


def source_over(
    api: ScriptedApi, store: InMemoryConnectorStateStore, *, dry_run: bool
) -> ApiSource:
    state = ConnectorState(store, "http://erp.test/api/workorders", scope="declarative_http")
    return ApiSource(reader(api, KEYSET), state, dry_run=dry_run)


async def applied(source: ApiSource) -> None:
    await source.prepare()
    async for batch in source.batches(100):
        await source.complete(batch)
    await source.close()


async def test_completed_pages_store_the_watermark_and_their_dead_letters() -> None:
    records = [record(1, at(1)), record(2, at(2), isDone="yes"), record(3, at(3))]
    store = InMemoryConnectorStateStore()
    await applied(source_over(ScriptedApi(records), store, dry_run=False))
    (state,) = store.states.values()
    assert state["watermark"] == at(3) and state["afterOrderNo"] == 3
    assert [entry["scope"] for entry in store.letters.values()] == ["declarative_http"]
    # The next run starts after it.
    api = ScriptedApi(records)
    await applied(source_over(api, store, dry_run=False))
    assert api.asked[0]["after"] == f"{at(3)},3"


async def test_a_dry_run_stores_nothing_and_quarantines_nothing() -> None:
    records = [record(1, at(1)), record(2, at(2), isDone="yes")]
    store = InMemoryConnectorStateStore()
    await applied(source_over(ScriptedApi(records), store, dry_run=True))
    assert store.states == {} and store.letters == {}
