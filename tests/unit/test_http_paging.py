"""The HTTP connector's paging and watermark against a scripted API: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from pydantic import HttpUrl

from tests.builders import client_record
from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.connectors.client_erp_http.api import (
    EXCERPT_CHARS,
    EXCERPT_WINDOW,
    ErpApi,
    Listing,
    ProtocolError,
)
from tracos_sync.connectors.client_erp_http.paging import EPOCH, PageHandle, Pager, Watermark
from tracos_sync.connectors.client_erp_http.retrying import retry_after
from tracos_sync.connectors.client_erp_http.settings import HttpSettings
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import builtin_mapping

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def at(day: int) -> str:
    return f"2024-05-{day:02d}T00:00:00.000Z"


def order(number: int, day: int) -> WorkOrder:
    stamp = datetime(2024, 5, day, tzinfo=UTC)
    return WorkOrder(number, Status.PENDING, "t", stamp, stamp)


def test_the_watermark_is_a_key_of_instant_and_order_number() -> None:
    mark = Watermark(datetime(2024, 5, 3, tzinfo=UTC), 4)
    assert mark.passes(datetime(2024, 5, 3, tzinfo=UTC), 4)
    assert mark.passes(datetime(2024, 5, 2, tzinfo=UTC), 99)
    assert not mark.passes(datetime(2024, 5, 3, tzinfo=UTC), 5)
    assert Watermark(mark.since) < mark < Watermark(datetime(2024, 5, 4, tzinfo=UTC))
    assert Watermark() == Watermark(EPOCH, 0)


class ScriptedApi:
    """Answers listings from a list of records as the API contract says (after the key
    (``updatedSince``, ``afterOrderNo``), ordered by it), or as ``answer`` overrides."""

    def __init__(self, records: list[dict[str, Any]], size: int = 2) -> None:
        self.records = records
        self.size = size
        self.asked: list[tuple[str, int]] = []
        self.answer: Listing | None = None

    async def list_page(self, since: str, after: int) -> Listing:
        self.asked.append((since, after))
        if self.answer is not None:
            return self.answer
        chosen = sorted(
            (
                r
                for r in self.records
                if (r["lastUpdateDate"], r["orderNo"]) > (since, after)
                and r["lastUpdateDate"] >= since
            ),
            key=lambda r: (r["lastUpdateDate"], r["orderNo"]),
        )
        return Listing(chosen[: self.size], len(chosen) > self.size)


def pager(api: ScriptedApi, max_pages: int = 100) -> Pager:
    return Pager(
        cast(ErpApi, api),
        RecordDecoder(builtin_mapping()),
        max_pages=max_pages,
        clock_skew=timedelta(minutes=5),
        clock=lambda: NOW,
    )


async def read(p: Pager, start: Watermark | None = None) -> list[InboundUnit]:
    return [unit async for unit in p.pages(start or Watermark())]


def numbers(units: list[InboundUnit]) -> list[int]:
    return [r.number for u in units for r in u.records]


async def test_keyset_paging_reads_every_record_once() -> None:
    api = ScriptedApi([client_record(n, lastUpdateDate=at(n)) for n in range(1, 6)])
    units = await read(pager(api))
    assert numbers(units) == [1, 2, 3, 4, 5]
    # Each request starts after the newest record seen.
    assert api.asked == [("1970-01-01T00:00:00.000Z", 0), (at(2), 2), (at(4), 4)]


async def test_records_at_one_instant_page_forward_by_order_number() -> None:
    api = ScriptedApi([client_record(n, lastUpdateDate=at(1)) for n in range(1, 6)])
    units = await read(pager(api), Watermark(datetime(2024, 5, 1, tzinfo=UTC), 1))
    assert numbers(units) == [2, 3, 4, 5]
    assert [after for _, after in api.asked] == [1, 3]


async def test_a_future_record_is_handed_on_and_never_moves_the_watermark() -> None:
    """The pager does not refuse it (the pipeline does, by the rule of every connector, or
    counts it stale when TracOS holds it); it stays after the watermark."""
    future = (NOW + timedelta(minutes=6)).isoformat()
    near = (NOW + timedelta(minutes=4)).isoformat()  # within the clock-skew allowance
    api = ScriptedApi(
        [
            client_record(1, lastUpdateDate=at(1)),
            client_record(2, lastUpdateDate=at(2)),
            client_record(3, lastUpdateDate=near),
            client_record(9, lastUpdateDate=future),
        ],
        size=1,
    )
    units = await read(pager(api))
    assert numbers(units) == [1, 2, 3, 9]
    assert not [p for u in units for p in u.problems]
    marks = [cast(PageHandle, u.handle).mark for u in units]
    assert max(marks).since <= NOW, "never stored past the moment the page was asked for"


async def test_an_empty_page_that_claims_more_is_a_protocol_error() -> None:
    api = ScriptedApi([])
    api.answer = Listing([], True)
    with pytest.raises(ProtocolError, match="empty page that claims more"):
        await read(pager(api))
    assert len(api.asked) == 1


async def test_records_older_than_asked_for_are_a_protocol_error() -> None:
    api = ScriptedApi([])
    api.answer = Listing([client_record(1, lastUpdateDate=at(1))], False)
    with pytest.raises(ProtocolError, match="older than updatedSince"):
        await read(pager(api), Watermark(datetime(2024, 5, 2, tzinfo=UTC), 7))


async def test_paging_is_bounded_per_run() -> None:
    api = ScriptedApi([client_record(1, lastUpdateDate=at(1))])
    api.answer = Listing([client_record(1, lastUpdateDate=at(1))], True)
    units = await read(pager(api, max_pages=4))
    assert numbers(units) == [1], "progress: the run ends, what was read counts"
    assert len(api.asked) == 4
    with pytest.raises(ProtocolError, match="paging does not end"):
        await read(pager(api, max_pages=4), Watermark(datetime(2024, 5, 1, tzinfo=UTC), 1))


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
    settings = HttpSettings(client_api_url=HttpUrl("http://erp.example"), client_api_token=token)
    api = ErpApi(settings)
    for body in (
        b" " * (EXCERPT_WINDOW - shift) + token.encode(),
        b"x" * (EXCERPT_CHARS - shift) + token.encode(),
        b"bad token " + token.encode() + b" " + b"y" * 500,
    ):
        shown = api.excerpt(body)
        assert len(shown) <= EXCERPT_CHARS
        assert not any(token[i : i + 2] in shown for i in range(len(token) - 1)), shown
