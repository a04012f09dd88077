"""SAP's CAP server (tests/support/cap.py) behaves as the HTTP connector will rely on: orders
created with SAP's zero-padded keys, read incrementally with ``$filter`` on the server-stamped
``LastChangeDateTime`` and ``$orderby``, in pages the server cuts (``@odata.nextLink``), each
with an ETag; a write with the current ETag goes through and moves the stamp, a stale one gets
412 and changes nothing; a restart, even after a crash, loses nothing and paging goes on; and
5,000 orders load in seconds. These facts are what the connector's tests build on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import httpx
import pytest

from tests.support.cap import CapServer, batch_creates, running_cap_server

PAGE = 100  # CAP's page limit in tools/cap-erp/package.json


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as http:
        yield http


def number(n: int) -> str:
    """SAP's order number: twelve digits, zero-padded."""
    return f"{4_000_000 + n:012d}"


def order(n: int, **fields: Any) -> dict[str, Any]:
    return {"MaintenanceOrder": number(n), "MaintenanceOrderDesc": f"order {n}", **fields}


def create(client: httpx.Client, cap: CapServer, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(cap.orders_url, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def create_many(client: httpx.Client, cap: CapServer, numbers: range) -> None:
    """Creates in ``$batch`` requests of 100, each one change set (one transaction)."""
    for start in range(numbers.start, numbers.stop, 100):
        bodies = [order(n) for n in range(start, min(start + 100, numbers.stop))]
        response = client.post(f"{cap.url}/$batch", json=batch_creates(bodies))
        assert response.status_code == 200, response.text
        assert {part["status"] for part in response.json()["responses"]} == {201}


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def wait_past(moment: str) -> None:
    """Until this machine's clock (the server's) is past ``moment``: CAP's stamps have
    millisecond resolution, and two writes in one millisecond would share their stamp."""
    while datetime.now(UTC) <= stamp(moment):
        time.sleep(0.001)


def query(cap: CapServer, params: dict[str, str]) -> str:
    """The orders' URL with ``params``, spaces as %20: CAP refuses the form encoding's ``+``
    (httpx's ``params=`` sends that)."""
    encoded = urlencode(params, quote_via=quote, safe="$,'")
    return f"{cap.orders_url}?{encoded}"


def all_pages(
    client: httpx.Client, cap: CapServer, params: dict[str, str]
) -> list[list[dict[str, Any]]]:
    """Every page of a query, following ``@odata.nextLink`` (relative to the service root)."""
    pages = []
    response = client.get(query(cap, params))
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["value"])
        if "@odata.nextLink" not in body:
            return pages
        response = client.get(urljoin(f"{cap.url}/", body["@odata.nextLink"]))


def test_an_order_is_created_with_its_zero_padded_key_and_the_servers_stamps(
    cap: CapServer, client: httpx.Client
) -> None:
    before = datetime.now(UTC)
    created = create(client, cap, order(123, MaintenanceProcessingPhase="1"))
    read = client.get(cap.order_url(number(123)))
    assert read.status_code == 200
    body = read.json()
    assert body["MaintenanceOrder"] == "000004000123"
    assert body["MaintenanceProcessingPhase"] == "1"
    assert body["IsMarkedForDeletion"] is False
    # Stamped by the server, creation date and time apart, as SAP keeps them.
    assert stamp(body["LastChangeDateTime"]) >= before.replace(microsecond=0)
    assert body["CreationDate"] == body["LastChangeDateTime"][:10]
    assert body["CreationTime"] == body["LastChangeDateTime"][11:19]
    assert body["LastChangeDateTime"] == created["LastChangeDateTime"]
    # The key is a string: without its zeros it is another order, which does not exist.
    assert client.get(cap.order_url("4000123")).status_code == 404


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as the kernel lists them) of the sockets listening on
    ``port``, from /proc/net/tcp and tcp6: read locally, no traffic sent anywhere."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_server_listens_on_loopback_only(cap: CapServer) -> None:
    assert listening_addresses(cap.port) == {"0100007F"}  # 127.0.0.1, little-endian


def test_a_second_create_of_the_same_key_is_refused_not_a_server_fault(
    cap: CapServer, client: httpx.Client
) -> None:
    create(client, cap, order(1))
    again = client.post(cap.orders_url, json=order(1, MaintenanceOrderDesc="other"))
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "ENTITY_ALREADY_EXISTS"
    assert client.get(cap.order_url(number(1))).json()["MaintenanceOrderDesc"] == "order 1"


def test_changes_are_read_by_a_filter_on_the_last_change_in_order(
    cap: CapServer, client: httpx.Client
) -> None:
    # Numbers created in descending order, so that ordering by time and by key differ.
    created = [create(client, cap, order(n)) for n in range(9, -1, -1)]
    since = created[4]["LastChangeDateTime"]
    expected = sorted(
        (o["LastChangeDateTime"], o["MaintenanceOrder"])
        for o in created
        if stamp(o["LastChangeDateTime"]) > stamp(since)
    )
    params = {
        "$filter": f"LastChangeDateTime gt {since}",
        "$orderby": "LastChangeDateTime,MaintenanceOrder",
    }
    changed = client.get(query(cap, params)).json()["value"]
    assert [(o["LastChangeDateTime"], o["MaintenanceOrder"]) for o in changed] == expected
    assert expected, "no order created after the fifth?"
    params["$orderby"] = "MaintenanceOrder"
    by_key = client.get(query(cap, params)).json()["value"]
    assert [o["MaintenanceOrder"] for o in by_key] == sorted(key for _, key in expected)
    # A space in the query must be %20: the form encoding's "+" is refused.
    refused = client.get(cap.orders_url, params=params)
    assert "+" in str(refused.url)
    assert refused.status_code == 400


def test_the_server_cuts_pages_and_links_the_next_keeping_the_filter(
    cap: CapServer, client: httpx.Client
) -> None:
    create_many(client, cap, range(250))
    # Asking for more than the page limit still gets one page of it and a link to the rest.
    pages = all_pages(client, cap, {"$orderby": "MaintenanceOrder", "$top": "1000"})
    assert [len(page) for page in pages] == [PAGE, PAGE, 50]
    keys = [o["MaintenanceOrder"] for page in pages for o in page]
    assert keys == [number(n) for n in range(250)]

    since = "2000-01-01T00:00:00Z"
    filtered = all_pages(
        client,
        cap,
        {"$filter": f"LastChangeDateTime gt {since}", "$orderby": "MaintenanceOrder"},
    )
    assert [len(page) for page in filtered] == [PAGE, PAGE, 50]
    after = number(199)
    rest = all_pages(
        client,
        cap,
        {"$filter": f"MaintenanceOrder gt '{after}'", "$orderby": "MaintenanceOrder"},
    )
    assert [o["MaintenanceOrder"] for page in rest for o in page] == [
        number(n) for n in range(200, 250)
    ]


def test_the_next_link_counts_rows_so_a_change_between_pages_skips_one_and_keys_do_not(
    cap: CapServer, client: httpx.Client
) -> None:
    """CAP's ``$skiptoken`` is an offset: an order changed while a reader is between pages moves
    to the end, the rest shift down one, and the reader misses the one that slid onto the page it
    already read. A filter on the last change *and the key* of the last order read does not."""
    create_many(client, cap, range(250))
    in_change_order = {"$orderby": "LastChangeDateTime,MaintenanceOrder"}
    first = client.get(query(cap, in_change_order)).json()
    assert len(first["value"]) == PAGE
    moved = first["value"][0]
    edit = client.patch(
        cap.order_url(moved["MaintenanceOrder"]),
        json={"MaintenanceOrderDesc": "edited between pages"},
        headers={"If-Match": moved["@odata.etag"]},
    )
    assert edit.status_code == 200

    seen = [o["MaintenanceOrder"] for o in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        page = client.get(urljoin(f"{cap.url}/", link)).json()
        seen += [o["MaintenanceOrder"] for o in page["value"]]
        link = page.get("@odata.nextLink")
    skipped = {number(n) for n in range(250)} - set(seen)
    assert len(skipped) == 1, skipped

    last = first["value"][-1]
    at, key = last["LastChangeDateTime"], last["MaintenanceOrder"]
    rest = all_pages(
        client,
        cap,
        {
            "$filter": f"LastChangeDateTime gt {at} or "
            f"(LastChangeDateTime eq {at} and MaintenanceOrder gt '{key}')",
            **in_change_order,
        },
    )
    keyed = [o["MaintenanceOrder"] for o in first["value"]]
    keyed += [o["MaintenanceOrder"] for page in rest for o in page]
    assert set(keyed) == {number(n) for n in range(250)}


def test_every_order_carries_its_etag_the_last_change(cap: CapServer, client: httpx.Client) -> None:
    create_many(client, cap, range(5))
    listed = client.get(cap.orders_url).json()["value"]
    assert len(listed) == 5
    for record in listed:
        assert record["@odata.etag"] == f'W/"{record["LastChangeDateTime"]}"'
        one = client.get(cap.order_url(record["MaintenanceOrder"]))
        assert one.headers["ETag"] == record["@odata.etag"]


def test_a_write_with_the_current_etag_goes_through_and_moves_the_stamp(
    cap: CapServer, client: httpx.Client
) -> None:
    created = create(client, cap, order(7))
    wait_past(created["LastChangeDateTime"])
    written = client.patch(
        cap.order_url(number(7)),
        json={"MaintenanceProcessingPhase": "3"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert written.status_code == 200, written.text
    after = written.json()
    assert after["MaintenanceProcessingPhase"] == "3"
    assert stamp(after["LastChangeDateTime"]) > stamp(created["LastChangeDateTime"])
    assert written.headers["ETag"] == after["@odata.etag"] != created["@odata.etag"]
    assert after["CreationDate"] == created["CreationDate"]
    assert after["CreationTime"] == created["CreationTime"]


def test_a_write_with_a_stale_etag_gets_412_and_changes_nothing(
    cap: CapServer, client: httpx.Client
) -> None:
    created = create(client, cap, order(8))
    wait_past(created["LastChangeDateTime"])
    erp_edit = client.patch(
        cap.order_url(number(8)),
        json={"MaintenanceOrderDesc": "edited in the ERP"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert erp_edit.status_code == 200
    ours = client.patch(
        cap.order_url(number(8)),
        json={"MaintenanceOrderDesc": "ours, from a stale copy"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert ours.status_code == 412
    now = client.get(cap.order_url(number(8)))
    assert now.json()["MaintenanceOrderDesc"] == "edited in the ERP"
    assert now.headers["ETag"] == erp_edit.headers["ETag"]
    # No unconditional writes: without If-Match the server asks for one (428), as S/4HANA does.
    blind = client.patch(cap.order_url(number(8)), json={"MaintenanceOrderDesc": "blind"})
    assert blind.status_code == 428
    replaced = client.put(cap.order_url(number(8)), json=order(8, MaintenanceOrderDesc="blind"))
    assert replaced.status_code == 428
    assert (
        client.get(cap.order_url(number(8))).json()["MaintenanceOrderDesc"] == "edited in the ERP"
    )
    # A conditional write to an order that does not exist is 412 too, not 404: a connector
    # cannot tell "absent" from "stale" by a PATCH, and creates with POST.
    absent = client.patch(
        cap.order_url(number(9)),
        json={"MaintenanceOrderDesc": "x"},
        headers={"If-Match": created["@odata.etag"]},
    )
    assert absent.status_code == 412


def test_a_crash_and_restart_loses_nothing_and_paging_goes_on(client: httpx.Client) -> None:
    with running_cap_server() as cap:
        create_many(client, cap, range(250))
        params = {"$orderby": "MaintenanceOrder"}
        first = client.get(cap.orders_url, params=params).json()
        port = cap.port

        cap.kill()
        with pytest.raises(httpx.TransportError):
            client.get(cap.orders_url)
        cap.start()

        assert cap.port == port
        seen = [o["MaintenanceOrder"] for o in first["value"]]
        link = first["@odata.nextLink"]
        while link:
            page = client.get(urljoin(f"{cap.url}/", link)).json()
            seen += [o["MaintenanceOrder"] for o in page["value"]]
            link = page.get("@odata.nextLink")
        assert seen == [number(n) for n in range(250)]


def test_five_thousand_orders_are_created_in_seconds(cap: CapServer, client: httpx.Client) -> None:
    started = time.monotonic()
    create_many(client, cap, range(5000))
    took = time.monotonic() - started
    counted = client.get(cap.orders_url, params={"$count": "true", "$top": "0"}).json()
    assert counted["@odata.count"] == 5000
    print(f"5,000 orders created through $batch in {took:.1f} s ({5000 / took:.0f}/s)")
    assert took < 120, f"5,000 orders took {took:.0f} s"
