"""The declarative HTTP connector's parts against SAP's own OData v4 server (CAP, the ``cap``
fixture): a description's query as CAP accepts it (``%20``), its server-driven pages followed
from relative ``@odata.nextLink``s, keyset pages restarted from the last (time, key) read across
a run of orders that share one stamp; and why only keyset paging may commit the watermark per
page: an order changed between two ``$skiptoken`` pages shifts the rest, and one is never read
(the one that moved is read twice: the sign of it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import pytest

from tests.support.cap import CapServer, batch_creates
from tracos_sync.connectors.declarative_http.description import ApiDescription, load_description
from tracos_sync.connectors.declarative_http.incremental import changes_after, changes_since
from tracos_sync.connectors.declarative_http.pages import Pages
from tracos_sync.connectors.declarative_http.paginators import Page, paginator
from tracos_sync.connectors.declarative_http.selector import records_at

CAP_PAGE = 100  # CAP's page limit (tools/cap-erp/package.json)
KEYSET = {"style": "keyset", "size_param": "$top"}
ODATA_V4 = {"style": "odata_v4"}


def describe(cap: CapServer, paging: dict[str, Any]) -> ApiDescription:
    return load_description(
        {
            "base_url": cap.url,
            "read": {
                "path": "MaintenanceOrder",
                "records": "value",
                "query": {"$orderby": "LastChangeDateTime,MaintenanceOrder"},
                "since": {"$filter": "LastChangeDateTime gt {since}"},
                "after": {
                    "$filter": "LastChangeDateTime gt {since} or (LastChangeDateTime eq {since} "
                    "and MaintenanceOrder gt '{number}')"
                },
                "page_size": 40,
                "paging": paging,
            },
        },
        "test",
        {},
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield http


async def create_many(client: httpx.AsyncClient, cap: CapServer, count: int) -> None:
    """Orders 1..count in ``$batch`` change sets of 100: each set one transaction, so its orders
    share one ``LastChangeDateTime`` (ties only the key breaks)."""
    for start in range(1, count + 1, 100):
        bodies: list[dict[str, object]] = [
            {"MaintenanceOrder": f"{n:012d}", "MaintenanceOrderDesc": f"order {n}"}
            for n in range(start, min(start + 100, count + 1))
        ]
        response = await client.post(f"{cap.url}/$batch", json=batch_creates(bodies))
        assert response.status_code == 200, response.text


async def read_pass(
    client: httpx.AsyncClient,
    api: ApiDescription,
    between_pages: Callable[[Page], Awaitable[None]] | None = None,
) -> tuple[list[str], Pages]:
    """The keys of one pass from the start, as the description reads them."""
    root = httpx.URL(str(api.base_url))

    async def fetch(url: httpx.URL, headers: Mapping[str, str], sent: asyncio.Event | None) -> Page:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text  # CAP refuses a + for a space: 400
        document = response.json()
        return Page(url, response, document, records_at(document, api.read.records))

    def after(record: Any) -> httpx.URL:
        return changes_after(api, record["LastChangeDateTime"], record["MaintenanceOrder"])

    size = api.read.page_size
    pages = Pages(
        paginator(api.read.paging, changes_since(api, None), root, size, after),
        fetch,
        root=root,
        max_pages=api.read.max_pages,
    )
    keys = []
    async for page in pages:
        keys += [record["MaintenanceOrder"] for record in page.records]
        if between_pages is not None and pages.read == 1:
            await between_pages(page)
    return keys, pages


async def test_odata_v4_pages_are_followed_from_caps_relative_next_links(
    cap: CapServer, client: httpx.AsyncClient
) -> None:
    await create_many(client, cap, 250)
    keys, pages = await read_pass(client, describe(cap, ODATA_V4))
    assert keys == [f"{n:012d}" for n in range(1, 251)]
    assert pages.complete and pages.read == 3  # CAP cuts at 100, whatever we prefer


@pytest.mark.parametrize(("size", "requests"), [(40, 8), (1_000, 4)])
async def test_keyset_pages_restart_from_the_last_time_and_key_across_shared_stamps(
    cap: CapServer, client: httpx.AsyncClient, size: int, requests: int
) -> None:
    """Across runs of 100 orders sharing one stamp; and with a ``$top`` above CAP's limit,
    which answers 100 (a short page is not the last: the pass ends on an empty one)."""
    await create_many(client, cap, 250)
    api = describe(cap, KEYSET)
    api = api.model_copy(update={"read": api.read.model_copy(update={"page_size": size})})
    keys, pages = await read_pass(client, api)
    assert keys == [f"{n:012d}" for n in range(1, 251)]
    assert pages.complete and pages.read == requests


async def test_the_since_filter_reads_only_what_changed_after_the_watermark(
    cap: CapServer, client: httpx.AsyncClient
) -> None:
    await create_many(client, cap, 150)  # two stamps: orders 1-100, then 101-150
    api = describe(cap, ODATA_V4)
    first = (await client.get(changes_since(api, None))).json()["value"]
    since = first[0]["LastChangeDateTime"]
    later = (await client.get(changes_since(api, since))).json()["value"]
    assert [o["MaintenanceOrder"] for o in later] == [f"{n:012d}" for n in range(101, 151)]


@pytest.mark.parametrize(("paging", "missed"), [(ODATA_V4, 1), (KEYSET, 0)])
async def test_an_order_changed_between_pages_is_missed_by_skiptoken_paging_only(
    cap: CapServer, client: httpx.AsyncClient, paging: dict[str, Any], missed: int
) -> None:
    await create_many(client, cap, 250)

    async def change_one_already_read(page: Page) -> None:
        record = page.records[0]  # now stamped last: every order after it moves up one row
        response = await client.patch(
            cap.order_url(record["MaintenanceOrder"]),
            json={"MaintenanceOrderDesc": "changed in the ERP"},
            headers={"If-Match": record["@odata.etag"]},
        )
        assert response.status_code == 200, response.text

    keys, _ = await read_pass(client, describe(cap, paging), change_one_already_read)
    assert len({f"{n:012d}" for n in range(1, 251)} - set(keys)) == missed
    # The order that moved is read again at the end: with offsets, one repeat per row skipped,
    # which is how a reader can tell that such a pass must not move the watermark.
    assert len(keys) - len(set(keys)) == 1
