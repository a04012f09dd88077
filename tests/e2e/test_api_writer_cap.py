"""The declarative writer against SAP's own OData v4 server (CAP, the ``cap`` fixture), built
directly (the connector's wiring is elsewhere) with a description of S/4HANA's maintenance order:
new orders created with ``POST`` under their zero-padded keys; changed ones updated with
``PATCH`` and ``If-Match`` (CAP answers 428 without it); an ERP edit racing our write gets 412
and is kept, ours counted superseded; our writes, stamped by CAP, known for ours when read back;
5,000 orders written as fast as a bare httpx loop sending the same requests."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from tests.fakes import InMemoryConnectorStateStore
from tests.support.cap import CapServer
from tests.support.maintenance_order import READ, WRITE, maintenance_order_mapping, number
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.echoes import Echoes, content_hash
from tracos_sync.connectors.declarative_http.requester import Limits, Requester
from tracos_sync.connectors.declarative_http.sink import DEFAULT_CONCURRENCY, DeclarativeSink
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import ConnectorContext, Delivery

MAPPING = maintenance_order_mapping()
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
LIMITS = Limits(timeout=30, retry_budget=30, max_bytes=1 << 20)
BATCH = 1_000
# The figures issue 23 asks for (5,000 orders each way, the writer at most 1.3x a bare loop)
# are a benchmark: `make bench-http` runs the last test with BENCH_HTTP=1. `make test` writes 500
# and checks what was written, not how fast (a timing on a shared machine is no test).
BENCH = os.environ.get("BENCH_HTTP") == "1"
# BENCH_HTTP_ORDERS (500 or a multiple): fewer, to check that the benchmark runs (its figures
# are for 5,000).
MANY = int(os.environ.get("BENCH_HTTP_ORDERS", "5000")) if BENCH else 500
ROUND = min(500, MANY) if BENCH else 100
RATIO = 1.3  # issue 23: outbound through the writer at most 1.3x a bare httpx loop


def order(n: int, title: str = "pump", updated: datetime = T0, **kw: object) -> WorkOrder:
    return WorkOrder(n, kw.pop("status", Status.PENDING), title, T0, updated)  # type: ignore[arg-type]


@dataclass
class Writer:
    sink: DeclarativeSink
    echoes: Echoes
    store: InMemoryConnectorStateStore
    client: httpx.AsyncClient

    async def deliver(self, orders: list[WorkOrder]) -> Delivery:
        total = Delivery()
        for start in range(0, len(orders), BATCH):
            part = await self.sink.deliver(orders[start : start + BATCH])
            total.delivered += part.delivered
            total.superseded += part.superseded
            total.refused += part.refused
            total.fatal = total.fatal or part.fatal
        return total


def writer_for(cap: CapServer, store: InMemoryConnectorStateStore) -> Writer:
    api = load_description({"base_url": cap.url, "read": READ, "write": WRITE}, "cap", {})
    client = httpx.AsyncClient(timeout=60)
    requester = Requester(
        client, LIMITS, list, superseded=api.write.superseded if api.write else ()
    )
    echoes = Echoes(store, cap.url)
    sink = DeclarativeSink(api, MAPPING, requester, echoes, ConnectorContext(state=store))
    return Writer(sink, echoes, store, client)


@pytest.fixture
async def writer(cap: CapServer) -> AsyncIterator[Writer]:
    made = writer_for(cap, InMemoryConnectorStateStore())
    await made.sink.prepare()
    yield made
    await made.client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


async def read(http: httpx.AsyncClient, cap: CapServer, n: int) -> dict[str, object]:
    response = await http.get(cap.order_url(number(n)))
    assert response.status_code == 200, response.text
    record: dict[str, object] = response.json()
    return record


async def test_new_orders_are_created_under_their_zero_padded_keys(
    cap: CapServer, writer: Writer, http: httpx.AsyncClient
) -> None:
    delivery = await writer.deliver([order(4_000_123, "pump"), order(4_000_124, "valve")])
    assert sorted(delivery.delivered) == [4_000_123, 4_000_124]
    record = await read(http, cap, 4_000_123)
    assert record["MaintenanceOrder"] == "000004000123"
    assert record["MaintenanceOrderDesc"] == "pump"
    assert record["MaintenanceProcessingPhase"] == "0"
    assert record["IsMarkedForDeletion"] is False


async def test_a_changed_order_is_updated_on_the_version_our_write_got_back(
    cap: CapServer, writer: Writer, http: httpx.AsyncClient
) -> None:
    await writer.deliver([order(1)])
    created = (await read(http, cap, 1))["@odata.etag"]
    assert writer.echoes.version(number(1)) == created
    changed = order(1, "pump, checked", T0 + timedelta(hours=1), status=Status.COMPLETED)
    delivery = await writer.deliver([changed])
    assert delivery.delivered == [1]
    record = await read(http, cap, 1)
    assert record["MaintenanceOrderDesc"] == "pump, checked"
    assert record["MaintenanceProcessingPhase"] == "5"
    # CAP takes no write without If-Match (428): it went through, so the version was sent.
    assert record["@odata.etag"] != created
    assert writer.echoes.version(number(1)) == record["@odata.etag"]


async def test_an_erp_edit_racing_our_write_gets_412_and_is_kept(
    cap: CapServer, writer: Writer, http: httpx.AsyncClient
) -> None:
    await writer.deliver([order(2)])
    current = await read(http, cap, 2)
    # Someone edits the order in the ERP after our write, before we read it.
    edit = await http.patch(
        cap.order_url(number(2)),
        json={"MaintenanceOrderDesc": "fixed in the ERP"},
        headers={"If-Match": str(current["@odata.etag"])},
    )
    assert edit.status_code == 200, edit.text
    delivery = await writer.deliver([order(2, "ours", T0 + timedelta(hours=1))])
    assert delivery.superseded == [2]
    assert not delivery.delivered and not delivery.refused and writer.store.letters == {}
    assert (await read(http, cap, 2))["MaintenanceOrderDesc"] == "fixed in the ERP"
    # Offered again: looked up, the ERP's copy is newer than ours, still not overwritten.
    again = await writer.deliver([order(2, "ours", T0 + timedelta(hours=1))])
    assert again.superseded == [2]
    assert (await read(http, cap, 2))["MaintenanceOrderDesc"] == "fixed in the ERP"


async def test_our_writes_read_back_are_echoes_an_erp_edit_after_them_is_not(
    cap: CapServer, writer: Writer, http: httpx.AsyncClient
) -> None:
    await writer.deliver([order(3), order(4)])
    await writer.echoes.save()
    # A restart between the write and the read: the state holds what we wrote.
    restarted = Echoes(writer.store, cap.url)
    await restarted.load()

    def seen(record: dict[str, object]) -> bool:
        decoded = MAPPING.decode(record)
        key = str(record["MaintenanceOrder"])
        return restarted.is_echo(
            key, content_hash(MAPPING.encode, decoded), str(record["@odata.etag"])
        )

    three = await read(http, cap, 3)
    # CAP stamped its own creation date and time and last change: the version tells.
    assert three["CreationDate"] != T0.date().isoformat()
    assert seen(three)
    four = await read(http, cap, 4)
    edit = await http.patch(
        cap.order_url(number(4)),
        json={"MaintenanceOrderDesc": "client edit"},
        headers={"If-Match": str(four["@odata.etag"])},
    )
    assert edit.status_code == 200
    assert not seen(await read(http, cap, 4))


async def bare_loop(
    http: httpx.AsyncClient,
    cap: CapServer,
    orders: list[WorkOrder],
    creating: bool,
    versions: dict[str, str],
) -> None:
    """The same requests as the writer, by hand: a POST per new order, a PATCH with If-Match per
    known one; as many at a time."""
    gate = asyncio.Semaphore(DEFAULT_CONCURRENCY)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    async def one(o: WorkOrder) -> None:
        body = orjson.dumps(MAPPING.encode(o))
        key = number(o.number)
        async with gate:
            if creating:
                answer = await http.post(cap.orders_url, content=body, headers=headers)
                assert answer.status_code == 201
            else:
                answer = await http.patch(
                    cap.order_url(key), content=body, headers={**headers, "If-Match": versions[key]}
                )
                assert answer.status_code == 200
            versions[key] = answer.headers["ETag"]

    await asyncio.gather(*(one(o) for o in orders))


@pytest.mark.slow
async def test_many_orders_are_written_and_timed_against_a_bare_httpx_loop(
    cap: CapServer, http: httpx.AsyncClient
) -> None:
    """5,000 orders created, then updated, by the loop and by the writer, on two ranges of keys
    of one server warmed up first (Node compiles its hot paths in the first thousand requests).
    The machine is shared: the two take turns, in rounds of ``ROUND`` orders, each going first in
    every other round, so that a slow spell of the machine costs both alike."""
    await bare_loop(http, cap, [order(900_000 + n) for n in range(1_000)], True, versions={})
    made = writer_for(cap, InMemoryConnectorStateStore())
    await made.sink.prepare()
    versions: dict[str, str] = {}
    figures = dict.fromkeys(("bare create", "writer create", "bare update", "writer update"), 0.0)
    written = 0
    later = T0 + timedelta(hours=1)
    for step, title, updated in (("create", "pump", T0), ("update", "checked", later)):
        for first in range(1, MANY + 1, ROUND):
            mine = [order(100_000 + n, title, updated) for n in range(first, first + ROUND)]
            theirs = [order(n, title, updated) for n in range(first, first + ROUND)]

            async def bare(batch: list[WorkOrder] = theirs, create: bool = step == "create") -> int:
                await bare_loop(http, cap, batch, create, versions)
                return len(batch)

            async def writer(batch: list[WorkOrder] = mine) -> int:
                return len((await made.deliver(batch)).delivered)

            turns = [("bare", bare), ("writer", writer)]
            for who, run in turns if first // ROUND % 2 else reversed(turns):
                began = time.perf_counter()
                done = await run()
                figures[f"{who} {step}"] += time.perf_counter() - began
                written += done if who == "writer" else 0
    await made.client.aclose()

    assert written == 2 * MANY
    print(" ".join(f"{name}={seconds:.2f}s" for name, seconds in figures.items()))
    if BENCH:
        for step in ("create", "update"):
            assert figures[f"writer {step}"] <= RATIO * figures[f"bare {step}"], figures
