"""The reader compares records as the ERP orders them (``order.ErpOrder``), against a scripted
S/4HANA-like OData API (``httpx.MockTransport``): last updates finer than a millisecond (S/4HANA
writes 7 digits) and keys written as text (``WO-9`` after ``WO-10``) read once each, pass after
pass, where the reader used to call them out of order for good; and the advice when an API's
order truly differs does not send the operator to a setting already right."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import InMemoryConnectorStateStore
from tests.unit.test_http_sink import world
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.query import fill
from tracos_sync.connectors.declarative_http.reader import ApiReader
from tracos_sync.connectors.declarative_http.requester import Limits, ProtocolError, Requester
from tracos_sync.connectors.declarative_http.state import ConnectorState
from tracos_sync.connectors.declarative_http.watermark import PageHandle, Watermark
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping, load_mapping

NOW = datetime(2025, 3, 12, tzinfo=UTC)
EXAMPLE = Path(__file__).parents[2] / "examples/mappings/s4-maintenance.toml"
# A string literal: ``'`` inside it written twice; an undoubled one ends it (no match: 400).
AFTER = re.compile(
    r"LastChangeDateTime gt (\S+) or \(LastChangeDateTime eq \S+ and "
    r"MaintenanceOrder gt '((?:[^']|'')*)'\)"
)


def s4_mapping(number: dict[str, Any]) -> RecordMapping:
    description: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())["mapping"]
    description["fields"]["number"] = {"path": "MaintenanceOrder", **number}
    return load_mapping(description, where="test")


def order(key: str, stamp: str) -> dict[str, Any]:
    return {
        "MaintenanceOrder": key,
        "MaintenanceOrderDesc": f"order {key}",
        "MaintenanceProcessingPhase": "0",
        "IsMarkedForDeletion": False,
        "CreationDate": "2025-03-10",
        "CreationTime": "14:22:05",
        "LastChangeDateTime": stamp,
    }


class S4:
    """``$filter`` after a (time, key) and ``$orderby`` both as an OData server on a database
    does them: stamps at their full precision (one width, so as text), keys as text."""

    def __init__(self, records: list[dict[str, Any]], order_by: str = "time,key") -> None:
        self.records = records
        self.order_by = order_by
        self.filters: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        rows = sorted(self.records, key=self._sort_key)
        found = AFTER.fullmatch(query.get("$filter", ""))
        if "MaintenanceOrder gt" in query.get("$filter", "") and not found:
            return httpx.Response(400, json={"error": "malformed $filter"})
        if found:
            self.filters.append(query["$filter"])
            since, key = found[1], found[2].replace("''", "'")
            rows = [
                r
                for r in rows
                if r["LastChangeDateTime"] > since
                or (r["LastChangeDateTime"] == since and r["MaintenanceOrder"] > key)
            ]
        return httpx.Response(200, json={"value": rows[: int(query["$top"])]})

    def _sort_key(self, r: dict[str, Any]) -> tuple[Any, ...]:
        stamp, key = r["LastChangeDateTime"], r["MaintenanceOrder"]
        if self.order_by == "time,number":  # an ERP whose key column is a number after all
            return stamp, int(key.removeprefix("WO-"))
        return stamp, key


def reader(api: S4, mapping: RecordMapping, query: dict[str, str] | None = None) -> ApiReader:
    description = load_description(
        {
            "base_url": "http://erp.test/odata",
            "read": {
                "path": "MaintenanceOrder",
                "records": "value",
                "query": {"$orderby": "LastChangeDateTime,MaintenanceOrder"}
                if query is None
                else query,
                "since": {"$filter": "LastChangeDateTime gt {since}"},
                "after": {
                    "$filter": "LastChangeDateTime gt {since} or (LastChangeDateTime eq "
                    "{since} and MaintenanceOrder gt '{number}')"
                },
                "page_size": 2,
                "filter_first_pass": False,
                "paging": {"style": "keyset", "size_param": "$top"},
            },
        },
        "test",
        {},
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(api.handle))
    requester = Requester(client, Limits(timeout=5, retry_budget=0, max_bytes=1 << 20), list)
    return ApiReader(
        description, mapping, requester, clock_skew=timedelta(minutes=5), clock=lambda: NOW
    )


async def one_pass(source: ApiReader, start: Watermark) -> tuple[list[int], Watermark]:
    units: list[InboundUnit] = [unit async for unit in source.units(start)]
    numbers = [o.number for unit in units for o in unit.records]
    handle = units[-1].handle if units else None
    return numbers, handle.mark if isinstance(handle, PageHandle) else start


async def test_stamps_finer_than_a_millisecond_are_compared_and_filtered_at_full_precision() -> (
    None
):
    """S/4HANA: two changes within one millisecond, the later one with the smaller key."""
    api = S4(
        [
            order("000000000100", "2025-03-11T08:00:00.0000000Z"),
            order("000000000009", "2025-03-11T08:30:00.1231000Z"),
            order("000000000001", "2025-03-11T08:30:00.1232000Z"),
            order("000000000200", "2025-03-11T09:00:00.0000000Z"),
        ]
    )
    source = reader(api, s4_mapping({"width": 12}))
    numbers, mark = await one_pass(source, Watermark())
    assert numbers == [100, 9, 1, 200]
    # The keyset filter after page 1 wrote the ERP's stamp whole, not cut to the millisecond.
    assert "LastChangeDateTime gt 2025-03-11T08:30:00.1231000Z" in api.filters[0]
    assert mark.text == "2025-03-11T09:00:00.0000000Z"

    api.records.append(order("000000000005", "2025-03-11T09:00:00.0000001Z"))
    numbers, mark = await one_pass(source, mark)
    assert numbers == [5]  # the next pass reads only what is newer, at the ERP's precision
    numbers, _ = await one_pass(source, mark)
    assert numbers == []


async def test_keys_written_as_text_are_ordered_as_the_erp_orders_text() -> None:
    """``WO-10`` sorts before ``WO-9`` as text: both read, and neither read again."""
    api = S4(
        [order("WO-9", "2025-03-11T08:30:00.123Z"), order("WO-10", "2025-03-11T08:30:00.123Z")]
    )
    source = reader(api, s4_mapping({"prefix": "WO-"}))
    numbers, mark = await one_pass(source, Watermark())
    assert numbers == [10, 9]
    numbers, _ = await one_pass(source, mark)
    assert numbers == []


@pytest.mark.parametrize(
    ("query", "advice"),
    [
        ({}, "(set read.query's $orderby)"),
        (
            {"$orderby": "LastChangeDateTime,MaintenanceOrder"},
            "read.query's $orderby = 'LastChangeDateTime,MaintenanceOrder' asks for an order",
        ),
    ],
)
async def test_an_api_out_of_order_is_told_without_advising_a_setting_already_right(
    query: dict[str, str], advice: str
) -> None:
    api = S4(
        [order("WO-9", "2025-03-11T08:30:00.123Z"), order("WO-10", "2025-03-11T08:30:00.123Z")],
        order_by="time,number",
    )
    with pytest.raises(ProtocolError) as caught:
        await one_pass(reader(api, s4_mapping({"prefix": "WO-"}), query), Watermark())
    message = str(caught.value)
    assert advice in message and "'WO-10'" in message
    assert ("set read.query" in message) == (not query)


async def test_the_stored_watermark_keeps_the_erps_finer_digits() -> None:
    state = ConnectorState(InMemoryConnectorStateStore(), "http://erp.test/odata", "api")
    mark = Watermark(datetime(2025, 3, 11, 8, 30, 0, 123_000, tzinfo=UTC), 1, "2000")
    await state.save(mark)
    assert await state.watermark(NOW) == mark


def test_a_quote_in_a_value_between_quotes_is_doubled_as_odata_literals_need() -> None:
    template = "MaintenanceOrder gt '{number}' and {{x}} eq {number}"
    assert fill(template, {"number": "WO 'A' 41"}) == (
        "MaintenanceOrder gt 'WO ''A'' 41' and {x} eq WO 'A' 41"
    )


async def test_a_key_holding_a_quote_pages_on_with_the_quote_doubled_in_the_filter() -> None:
    api = S4([order(f"WO 'A' {n:04d}", f"2025-03-11T08:30:00.{n:03d}Z") for n in (1, 2, 3)])
    source = reader(api, s4_mapping({"prefix": "WO 'A' ", "width": 4}))
    numbers, _ = await one_pass(source, Watermark())
    assert numbers == [1, 2, 3]
    assert "MaintenanceOrder gt 'WO ''A'' 0002'" in api.filters[0]


def test_a_key_in_a_write_path_is_percent_encoded_with_its_quotes_doubled() -> None:
    sink = world().sink
    url = sink._record_url("WO 'A'/1 é")
    assert url.raw_path.endswith(b"/MaintenanceOrder('WO%20''A''%2F1%20%C3%A9')")
