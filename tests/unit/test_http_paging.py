"""The present API's paging and watermark, read by the ``api`` connector's reader through the
description the ``http`` connector builds, against a scripted API: no server, no database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import HttpUrl

from tests.builders import client_record
from tracos_sync.connectors.declarative_http.present_api import description_of
from tracos_sync.connectors.declarative_http.present_settings import HttpSettings
from tracos_sync.connectors.declarative_http.reader import ApiReader
from tracos_sync.connectors.declarative_http.requester import (
    EXCERPT_CHARS,
    EXCERPT_WINDOW,
    Limits,
    ProtocolError,
    Requester,
)
from tracos_sync.connectors.declarative_http.retrying import retry_after
from tracos_sync.connectors.declarative_http.watermark import EPOCH, PageHandle, Watermark
from tracos_sync.domain.dates import parse_instant
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import builtin_mapping

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def at(day: int) -> str:
    return f"2024-05-{day:02d}T00:00:00.000Z"


def test_the_watermark_is_a_key_of_instant_and_order_number() -> None:
    mark = Watermark(datetime(2024, 5, 3, tzinfo=UTC), 4)
    assert mark.passes(datetime(2024, 5, 3, tzinfo=UTC), 4)
    assert mark.passes(datetime(2024, 5, 2, tzinfo=UTC), 99)
    assert not mark.passes(datetime(2024, 5, 3, tzinfo=UTC), 5)
    assert Watermark(mark.since) < mark < Watermark(datetime(2024, 5, 4, tzinfo=UTC))
    assert Watermark() == Watermark(EPOCH, 0)


class ScriptedApi:
    """Answers ``GET /workorders`` from a list of records as the present API's contract says
    (after the key (``updatedSince``, ``afterOrderNo``), ordered by it, ``pageSize`` at most),
    or as ``answer`` overrides (given the number of the request, 1-based)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.asked: list[tuple[str, str]] = []
        self.answer: Callable[[int], dict[str, Any]] | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        query = request.url.params
        assert request.url.path == "/workorders", request.url
        self.asked.append((query["updatedSince"], query["afterOrderNo"]))
        if self.answer is not None:
            return httpx.Response(200, json=self.answer(len(self.asked)))

        def key(r: dict[str, Any]) -> tuple[datetime, int]:
            return parse_instant(r["lastUpdateDate"]), r["orderNo"]

        after = (parse_instant(query["updatedSince"]), int(query["afterOrderNo"]))
        chosen = sorted((r for r in self.records if key(r) > after), key=key)
        size = int(query["pageSize"])
        return httpx.Response(200, json={"items": chosen[:size], "hasMore": len(chosen) > size})


def reader(api: ScriptedApi, size: int = 2, max_pages: int = 100) -> ApiReader:
    settings = HttpSettings(
        client_api_url=HttpUrl("http://erp.test"),
        client_api_page_size=size,
        client_api_max_pages=max_pages,
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(api.handle))
    requester = Requester(client, Limits(timeout=5, retry_budget=0, max_bytes=1 << 20), list)
    return ApiReader(
        description_of(settings),
        builtin_mapping(),
        requester,
        clock_skew=timedelta(minutes=5),
        clock=lambda: NOW,
    )


async def read(source: ApiReader, start: Watermark | None = None) -> list[InboundUnit]:
    try:
        return [unit async for unit in source.units(start or Watermark())]
    finally:
        await source.close()


def numbers(units: list[InboundUnit]) -> list[int]:
    return [r.number for u in units for r in u.records]


async def test_keyset_paging_reads_every_record_once() -> None:
    api = ScriptedApi([client_record(n, lastUpdateDate=at(n)) for n in range(1, 6)])
    units = await read(reader(api))
    assert numbers(units) == [1, 2, 3, 4, 5]
    # Each request starts after the newest record seen; the first from the beginning.
    assert api.asked == [("1970-01-01T00:00:00.000Z", "0"), (at(2), "2"), (at(4), "4")]


async def test_records_at_one_instant_page_forward_by_order_number() -> None:
    api = ScriptedApi([client_record(n, lastUpdateDate=at(1)) for n in range(1, 6)])
    units = await read(reader(api), Watermark(datetime(2024, 5, 1, tzinfo=UTC), 1))
    assert numbers(units) == [2, 3, 4, 5]
    assert [after for _, after in api.asked] == ["1", "3"]


async def test_a_future_record_is_handed_on_and_never_moves_the_watermark() -> None:
    """The reader does not refuse it (the pipeline does, by the rule of every connector, or
    counts it stale when TracOS holds it); it stays after the watermark."""
    future = (NOW + timedelta(minutes=6)).isoformat()
    near = (NOW + timedelta(minutes=4)).isoformat()  # within the clock-skew allowance
    api = ScriptedApi(
        [
            client_record(1, lastUpdateDate=at(1)),
            client_record(2, lastUpdateDate=at(2)),
            client_record(3, lastUpdateDate=near),
            client_record(9, lastUpdateDate=future),
        ]
    )
    units = await read(reader(api, size=1))
    assert numbers(units) == [1, 2, 3, 9]
    assert not [p for u in units for p in u.problems]
    marks = [u.handle.mark for u in units if isinstance(u.handle, PageHandle)]
    assert max(marks).since <= NOW, "never stored past the moment the page was asked for"


async def test_an_empty_page_that_claims_more_is_a_protocol_error() -> None:
    api = ScriptedApi([])
    api.answer = lambda _n: {"items": [], "hasMore": True}
    with pytest.raises(ProtocolError, match="empty page that claims more"):
        await read(reader(api))
    assert len(api.asked) == 1


async def test_records_at_or_before_updated_since_are_skipped() -> None:
    """An ERP that ignores the filter and sends older records: they are not applied again (the
    ``http`` connector of earlier versions failed the run on them instead)."""
    api = ScriptedApi([])
    api.answer = lambda _n: {
        "items": [client_record(1, lastUpdateDate=at(1)), client_record(3, lastUpdateDate=at(3))],
        "hasMore": False,
    }
    units = await read(reader(api), Watermark(datetime(2024, 5, 2, tzinfo=UTC), 7))
    assert numbers(units) == [3]


async def test_paging_is_bounded_per_run() -> None:
    """An API that always claims more: ``CLIENT_API_MAX_PAGES`` pages, what they brought
    applied; pages that bring nothing after the watermark are a protocol error."""
    api = ScriptedApi([])
    api.answer = lambda n: {"items": [client_record(n, lastUpdateDate=at(n))], "hasMore": True}
    units = await read(reader(api, max_pages=4))
    assert numbers(units) == [1, 2, 3, 4], "progress: the run ends, what was read counts"
    assert len(api.asked) == 4
    api.asked.clear()
    with pytest.raises(ProtocolError, match=r"4 pages \(CLIENT_API_MAX_PAGES\) brought nothing"):
        await read(reader(api, max_pages=4), Watermark(datetime(2024, 5, 20, tzinfo=UTC), 1))
    assert len(api.asked) == 4


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"items": [], "hasMore": "no"}, 'expected {"items": [...], "hasMore": true|false}'),
        ({"items": []}, 'expected {"items": [...], "hasMore": true|false}'),
        ({"value": []}, "got '{\"value\":[]}'"),
    ],
)
async def test_an_answer_of_another_shape_says_the_shape_expected(
    body: dict[str, Any], phrase: str
) -> None:
    api = ScriptedApi([])
    api.answer = lambda _n: body
    with pytest.raises(ProtocolError) as caught:
        await read(reader(api))
    assert phrase in str(caught.value)
    assert "read.records" not in str(caught.value), "no setting of the http connector"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Sat, 01 Jun 2024 12:00:30 GMT", 30.0),
        ("Sat, 01 Jun 2024 11:00:00 GMT", 0.0),
    ],
)
def test_retry_after_reads_seconds_and_dates(header: str | None, seconds: float | None) -> None:
    headers = httpx.Headers({} if header is None else {"Retry-After": header})
    assert retry_after(headers, NOW) == seconds


@pytest.mark.parametrize("shift", range(12))
def test_an_excerpt_never_shows_what_a_cut_leaves_of_the_token(shift: int) -> None:
    """Whatever falls at the edge of what is read, or of what is shown, no part of the token."""
    token = "abcdefghijkl"
    limits = Limits(timeout=5, retry_budget=0, max_bytes=1 << 20)
    requester = Requester(httpx.AsyncClient(), limits, lambda: [token])
    for body in (
        b" " * (EXCERPT_WINDOW - shift) + token.encode(),
        b"x" * (EXCERPT_CHARS - shift) + token.encode(),
        b"bad token " + token.encode() + b" " + b"y" * 500,
    ):
        shown = requester.excerpt(body)
        assert len(shown) <= EXCERPT_CHARS
        assert not any(token[i : i + 2] in shown for i in range(len(token) - 1)), shown
