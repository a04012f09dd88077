"""Paginators of the declarative HTTP connector, each style against a scripted ERP on
``httpx.MockTransport``: every record read once, and for every style the same guarantees (bounded
passes, an empty page that claims more, a next link that does not move or leaves the ERP)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from tracos_sync.connectors.declarative_http.pages import Pages
from tracos_sync.connectors.declarative_http.paginators import Page, paginator
from tracos_sync.connectors.declarative_http.paging_spec import PagingSpec
from tracos_sync.connectors.declarative_http.query import join_path, with_query
from tracos_sync.connectors.declarative_http.requester import ProtocolError
from tracos_sync.connectors.declarative_http.selector import records_at

ROOT = httpx.URL("http://erp.test/odata/v4/svc")
START = join_path(ROOT, "Orders")
SIZE = 5

STYLES: dict[str, tuple[dict[str, Any], str]] = {  # the paging table, and where records are
    "page_number": ({"style": "page_number", "size_param": "page_size"}, "items"),
    "offset": ({"style": "offset", "offset_param": "$skip", "limit_param": "$top"}, "items"),
    "cursor": ({"style": "cursor", "cursor_path": "meta.next", "size_param": "limit"}, "items"),
    "link_header": ({"style": "link_header", "size_param": "per_page"}, "items"),
    "odata_v4": ({"style": "odata_v4"}, "value"),
    "odata_v2": ({"style": "odata_v2"}, "d.results"),
    "keyset": ({"style": "keyset", "size_param": "$top", "more_path": "hasMore"}, "items"),
    "keyset_short_page": ({"style": "keyset", "size_param": "$top"}, "items"),
}


class Erp:
    """Orders sorted by (time, key), served in the style asked; ``moved`` changes one order
    after the first page (its time becomes the newest), ``lie`` makes the answers misbehave."""

    def __init__(self, style: str, count: int = 23) -> None:
        self.style = style
        self.orders = [{"k": f"{i:04d}", "t": f"2024-05-01T00:00:{i:02d}Z"} for i in range(count)]
        self.asked: list[httpx.Request] = []
        self.moved: str | None = None
        # "empty": no records but more; "stuck": the same next link; "past_end": a page past
        # the end answered with the last page again; "round": page 1 again, its link changed
        self.lie: str | None = None
        self.lie_link: str | None = None  # an @odata.nextLink to answer instead of the right one
        self.cap = 1_000  # the most records a page holds, whatever is asked for
        self.cap_at: dict[int, int] = {}  # the cap of the n-th answer (1-based), if another
        self.next_rel = "next"  # the rel of the Link header's next link

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        if self.moved and len(self.asked) == 2:
            order = next(o for o in self.orders if o["k"] == self.moved)
            order["t"] = "2024-05-02T00:00:00Z"
        rows = sorted(self.orders, key=lambda o: (o["t"], o["k"]))
        q = request.url.params
        style = self.style.removesuffix("_short_page")
        size = int(q.get("$top") or q.get("page_size") or q.get("limit") or q.get("per_page") or 0)
        if style.startswith("odata"):
            size = int(request.headers["Prefer"].removeprefix("odata.maxpagesize="))
        # As SAP CAP does: at most its own limit, whatever is asked.
        size = min(size, self.cap_at.get(len(self.asked), self.cap))
        start = {
            "page_number": lambda: (int(q["page"]) - 1) * size,
            "offset": lambda: int(q["$skip"]),
            "cursor": lambda: int(q.get("cursor", 0)),
            "link_header": lambda: (int(q.get("page", 1)) - 1) * int(q["per_page"]),
            "odata_v4": lambda: int(q.get("$skiptoken", 0)),
            "odata_v2": lambda: int(q.get("$skiptoken", 0)),
            "keyset": lambda: sum(
                (o["t"], o["k"]) <= (q.get("since", ""), q.get("after", "")) for o in rows
            ),
        }[style]()
        if self.lie == "past_end" and start >= len(rows):
            start = (len(rows) - 1) // size * size  # the last page, as some servers answer
        page, after = rows[start : start + size], start + size
        more = after < len(rows)
        if self.lie == "empty" and len(self.asked) == 2:
            page, more = [], True
        if self.lie == "round" and len(self.asked) >= 2:  # back to page 1, by a new link
            page, after, more = rows[:size], len(self.asked), True
        if self.lie == "stuck":
            after, more = size, True
        return self._answer(style, page, after, more, size)

    def _answer(
        self, style: str, page: list[Any], after: int, more: bool, size: int
    ) -> httpx.Response:
        relative = f"Orders?$skiptoken={after}"
        if style == "odata_v4":
            link = {"@odata.nextLink": self.lie_link or relative} if more else {}
            return httpx.Response(200, json={"value": page, **link})
        if style == "odata_v2":
            link = {"__next": str(ROOT) + "/" + relative} if more else {}
            return httpx.Response(200, json={"d": {"results": page, **link}})
        if style == "link_header" and more:
            link = f'<Orders?page={after // size + 1}&per_page={size}>; rel="{self.next_rel}"'
            if self.next_rel != "next":  # another link first, as GitHub answers
                link = f'<Orders?page=1&per_page={size}>; rel="first", {link}'
            return httpx.Response(200, json={"items": page}, headers={"Link": link})
        meta = {"next": str(after) if more else None}
        return httpx.Response(200, json={"items": page, "meta": meta, "hasMore": more})


def after(record: Any) -> httpx.URL:
    return with_query(START, [("since", record["t"]), ("after", record["k"])])


async def read(erp: Erp, max_pages: int = 100) -> tuple[list[str], Pages]:
    """The keys read in one pass, and the pass."""
    table, records_path = STYLES[erp.style]
    spec: PagingSpec = TypeAdapter(PagingSpec).validate_python(table)

    async with httpx.AsyncClient(transport=httpx.MockTransport(erp.handler)) as client:

        async def fetch(
            url: httpx.URL, headers: Mapping[str, str], sent: asyncio.Event | None
        ) -> Page:
            response = await client.get(url, headers=headers)
            document = response.json()
            return Page(url, response, document, records_at(document, records_path))

        pages = Pages(
            paginator(spec, START, ROOT, SIZE, after), fetch, root=ROOT, max_pages=max_pages
        )
        keys = [record["k"] async for page in pages for record in page.records]
    return keys, pages


# Styles that only know the end when a page comes back empty: one request more.
ENDS_EMPTY = {"page_number", "offset", "keyset_short_page"}


@pytest.mark.parametrize("style", STYLES)
async def test_every_style_reads_every_record_once_in_order(style: str) -> None:
    erp = Erp(style)
    keys, pages = await read(erp)
    assert keys == [o["k"] for o in erp.orders]
    expected = 5 + (style in ENDS_EMPTY)  # 23 records, 5 a page
    assert pages.complete and pages.read == len(erp.asked) == expected


@pytest.mark.parametrize("style", [s for s in STYLES if s != "page_number"])
async def test_a_server_that_caps_the_page_size_below_ours_loses_nothing(style: str) -> None:
    """A short page is not the last: SAP CAP answers at most 100 records whatever ``$top``
    asks, and a pass that stopped there would have read 100 of 5,000 and called it complete."""
    erp = Erp(style)
    erp.cap = 3
    keys, pages = await read(erp)
    assert keys == [o["k"] for o in erp.orders] and pages.complete


async def test_page_numbers_counted_in_a_capped_size_are_an_error_not_a_gap() -> None:
    erp = Erp("page_number")
    erp.cap = 3
    with pytest.raises(ProtocolError, match=r"page 1 held 3 records where 5 were asked for") as e:
        await read(erp)
    assert "set read.page_size to 3" in str(e.value) and len(erp.asked) == 2


@pytest.mark.parametrize("style", STYLES)
async def test_only_keyset_paging_lets_the_watermark_be_committed_per_page(style: str) -> None:
    table, _ = STYLES[style]
    spec: PagingSpec = TypeAdapter(PagingSpec).validate_python(table)
    assert paginator(spec, START, ROOT, SIZE, after).keyset_safe == style.startswith("keyset")


@pytest.mark.parametrize("style", ["offset", "odata_v4", "keyset"])
async def test_an_order_changed_while_paging_is_missed_by_offsets_not_by_keyset(style: str) -> None:
    """What CAP's ``$skiptoken`` does (a row offset): an order on page 1 that changes moves to
    the end, the rest shift down by one, and the first order of page 2 is never read."""
    erp = Erp(style)
    erp.moved = "0001"
    keys, _ = await read(erp)
    missed = {o["k"] for o in erp.orders} - set(keys)
    assert missed == (set() if style == "keyset" else {"0005"})


async def test_an_empty_keyset_page_that_claims_more_is_a_protocol_error() -> None:
    erp = Erp("keyset")
    erp.lie = "empty"
    with pytest.raises(ProtocolError, match=r"an empty page that claims more \(hasMore is true\)"):
        await read(erp)
    assert len(erp.asked) == 2


@pytest.mark.parametrize("style", ["cursor", "link_header", "odata_v4", "odata_v2"])
async def test_an_empty_page_whose_link_moves_on_is_followed(style: str) -> None:
    """OData and cursor APIs may answer an empty page before the next one (here page 2 of 5):
    the pass goes on, where it used to fail every time."""
    erp = Erp(style)
    erp.lie = "empty"
    keys, pages = await read(erp)
    assert keys == [o["k"] for o in erp.orders[:5] + erp.orders[10:]] and pages.complete


@pytest.mark.parametrize("style", ["page_number", "offset"])
async def test_a_page_past_the_end_answered_with_the_last_page_again_ends_the_pass(
    style: str,
) -> None:
    """23 orders, 5 a page: page 6 is answered with page 5 again. The pass ends there, every
    order read once, and nothing advises a smaller page size (which would cost a request per
    record)."""
    erp = Erp(style)
    erp.lie = "past_end"
    keys, pages = await read(erp)
    assert keys == [o["k"] for o in erp.orders]
    assert pages.complete and len(erp.asked) == 6


@pytest.mark.parametrize("style", ["cursor", "link_header", "odata_v4", "odata_v2"])
async def test_paging_that_goes_round_with_a_changing_link_is_an_error_naming_the_style(
    style: str,
) -> None:
    erp = Erp(style)
    erp.lie = "round"
    with pytest.raises(ProtocolError) as caught:
        await read(erp)
    assert len(erp.asked) == 2  # page 2 is page 1 again, under a new link
    assert f"holds the same records as page 1: the API's {style} paging goes round" in str(
        caught.value
    )


async def test_a_short_page_after_full_ones_then_more_advises_no_page_size() -> None:
    """Not a cap (the first page was full): a smaller page size would not help."""
    erp = Erp("page_number")
    erp.cap_at = {2: 3}  # page 2 alone is short
    with pytest.raises(ProtocolError, match="not of one size") as caught:
        await read(erp)
    assert "read.page_size" not in str(caught.value)


@pytest.mark.parametrize("style", ["cursor", "odata_v4", "odata_v2"])
async def test_a_next_link_that_does_not_move_is_an_error_not_a_loop(style: str) -> None:
    erp = Erp(style)
    erp.lie = "stuck"
    with pytest.raises(ProtocolError, match="asked for already in this pass") as caught:
        await read(erp)
    assert len(erp.asked) == 2 and "\n" not in str(caught.value)


@pytest.mark.parametrize("style", ["page_number", "odata_v4", "keyset"])
async def test_a_pass_is_bounded_and_says_it_was_cut_short(style: str) -> None:
    erp = Erp(style)
    keys, pages = await read(erp, max_pages=2)
    assert keys == [o["k"] for o in erp.orders[:10]]
    assert not pages.complete and len(erp.asked) == 2


@pytest.mark.parametrize(
    "link",
    ["http://evil.test/odata/v4/svc/Orders?$skiptoken=5", "https://erp.test/x", "//evil.test/"],
)
async def test_a_next_link_to_another_server_is_refused(link: str) -> None:
    erp = Erp("odata_v4")
    erp.lie_link = link
    with pytest.raises(ProtocolError, match="on another server"):
        await read(erp)
    assert len(erp.asked) == 1


async def test_odata_links_are_relative_to_the_service_root_and_the_query_keeps_its_spaces() -> (
    None
):
    erp = Erp("odata_v4")
    table, _ = STYLES["odata_v4"]
    start = with_query(START, [("$filter", "t gt 2024-05-01T00:00:00Z")])
    spec: PagingSpec = TypeAdapter(PagingSpec).validate_python(table)
    pages = paginator(spec, start, ROOT, SIZE, after)
    first = pages.first()
    assert first.raw_path == b"/odata/v4/svc/Orders?$filter=t%20gt%202024-05-01T00:00:00Z"
    assert pages.headers == {"Prefer": "odata.maxpagesize=5"}
    response = erp.handler(httpx.Request("GET", first, headers=pages.headers))
    document = response.json()
    following = pages.next(Page(first, response, document, document["value"]))
    assert str(following) == "http://erp.test/odata/v4/svc/Orders?$skiptoken=5"


def test_an_odata_next_link_is_relative_to_the_service_root_not_to_the_page() -> None:
    """CAP answers ``MaintenanceOrder?%24orderby=…&%24skiptoken=100``: under the service root,
    also for a collection reached by navigation."""
    start = join_path(ROOT, "Plants('1')/Orders")
    spec: PagingSpec = TypeAdapter(PagingSpec).validate_python({"style": "odata_v4"})
    pages = paginator(spec, start, ROOT, SIZE, after)
    link = "Plants('1')/Orders?%24skiptoken=5"
    response = httpx.Response(200, json={"value": [1], "@odata.nextLink": link})
    following = pages.next(Page(pages.first(), response, response.json(), [1]))
    assert str(following) == "http://erp.test/odata/v4/svc/Plants('1')/Orders?%24skiptoken=5"


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({"value": {"a": 1}}, "value", "are a dict, not a list"),
        ({"d": {}}, "d.results", "(d.results) are missing"),
        ({"items": []}, "", "(the whole answer) are a dict"),
    ],
)
def test_records_that_are_not_a_list_are_a_protocol_error(
    document: Any, path: str, expected: str
) -> None:
    with pytest.raises(ProtocolError, match=r"set read\.records") as caught:
        records_at(document, path)
    assert expected in str(caught.value)


@pytest.mark.parametrize("rel", ["next last", "Next", "prev NEXT"])
async def test_a_next_link_among_other_relations_or_capitalised_is_followed(rel: str) -> None:
    """RFC 8288 §3.3: ``rel`` is a space-separated list of relation types, case-insensitive."""
    erp = Erp("link_header")
    erp.next_rel = rel
    keys, pages = await read(erp)
    assert keys == [o["k"] for o in erp.orders] and pages.complete


def _scripted_pages(
    pages_of: dict[str, list[dict[str, str]]], hold: asyncio.Event
) -> tuple[Pages, list[str], list[str]]:
    """Pages over a fetch that serves ``pages_of`` by URL, says each request sent at once, and
    holds every answer after the first until ``hold`` is set: the URLs asked for, and those
    whose fetch was cancelled."""
    asked: list[str] = []
    cancelled: list[str] = []

    async def fetch(url: httpx.URL, headers: Mapping[str, str], sent: asyncio.Event | None) -> Page:
        asked.append(str(url))
        if sent is not None:
            sent.set()
        try:
            if len(asked) > 1:
                await hold.wait()
        except asyncio.CancelledError:
            cancelled.append(str(url))
            raise
        records = pages_of[str(url)]
        document = {"value": records, **({"@odata.nextLink": f"p{len(asked) + 1}"})}
        return Page(url, httpx.Response(200, json=document), document, records)

    spec: PagingSpec = TypeAdapter(PagingSpec).validate_python({"style": "odata_v4"})
    pages = Pages(
        paginator(spec, join_path(ROOT, "p1"), ROOT, SIZE, after), fetch, root=ROOT, max_pages=5
    )
    return pages, asked, cancelled


async def test_the_next_page_is_asked_for_before_this_one_is_handed_on() -> None:
    """The ERP answers the next page while the caller decodes and applies this one: by the
    time page 1 is handed on, page 2 has been asked for (and sent)."""
    rows = {str(join_path(ROOT, f"p{n}")): [{"k": f"{n}", "t": "x"}] for n in range(1, 6)}
    hold = asyncio.Event()
    hold.set()
    pages, asked, _ = _scripted_pages(rows, hold)
    seen_when_handed: list[int] = []
    async for _page in pages:
        seen_when_handed.append(len(asked))
    assert seen_when_handed[:4] == [2, 3, 4, 5], seen_when_handed
    assert pages.read == 5


async def test_a_page_asked_for_ahead_is_cancelled_when_the_caller_stops() -> None:
    rows = {str(join_path(ROOT, f"p{n}")): [{"k": f"{n}", "t": "x"}] for n in range(1, 6)}
    hold = asyncio.Event()  # page 2's answer never comes
    pages, asked, cancelled = _scripted_pages(rows, hold)
    stream = aiter(pages)
    await anext(stream)
    await stream.aclose()
    await asyncio.sleep(0)
    assert asked == [str(join_path(ROOT, "p1")), str(join_path(ROOT, "p2"))]
    assert cancelled == [str(join_path(ROOT, "p2"))]
