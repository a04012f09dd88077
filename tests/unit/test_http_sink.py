"""The declarative writer (``declarative_http/sink.py``) against a small ERP that behaves as CAP
does (``httpx.MockTransport``): it stamps a version on every write, answers 428 to a write
without ``If-Match``, 412 to a stale one and to one for a key it does not hold, 404 to a ``GET``
of an absent key, 400 to a create of a key it holds.

What it proves: new orders created with ``POST``, known ones updated conditionally on the version
our last write got back; an ERP edit we have not read is never overwritten (412, or an ERP copy
newer than TracOS's); a refusal is that record's alone (a dead letter); ``Retry-After`` is
honoured; writes are concurrent but bounded and in order per key; a fatal answer stops the
delivery; a create refused because the key exists meanwhile is superseded, not a dead letter."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.fakes import InMemoryConnectorStateStore
from tests.support.maintenance_order import READ, WRITE, maintenance_order_mapping, number
from tracos_sync.connectors.declarative_http.description import load_description
from tracos_sync.connectors.declarative_http.echoes import Echoes, content_hash
from tracos_sync.connectors.declarative_http.requester import Limits, Requester
from tracos_sync.connectors.declarative_http.sink import DeclarativeSink
from tracos_sync.domain.errors import FatalError
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import ConnectorContext

BASE = "http://erp.test/odata/v4/maintenance"
RECORD_URL = re.compile(r"/MaintenanceOrder\('([^']*)'\)$")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Hook = Callable[[httpx.Request], Awaitable[httpx.Response | None]]


@dataclass
class FakeErp:
    """CAP's write behaviour, in memory. ``hook`` may answer a request first."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, key, If-Match
    clock: datetime = datetime(2026, 6, 1, tzinfo=UTC)  # later than every TracOS time here
    hook: Hook | None = None

    def stamp(self) -> str:
        self.clock += timedelta(milliseconds=1)
        return self.clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def edit(self, key: str, **changes: Any) -> None:
        """A change made in the ERP."""
        self.orders[key] = {**self.orders[key], **changes, "LastChangeDateTime": self.stamp()}

    def etag(self, key: str) -> str:
        return f'W/"{self.orders[key]["LastChangeDateTime"]}"'

    def answer(self, key: str, status: int = 200) -> httpx.Response:
        body = {"@odata.etag": self.etag(key), **self.orders[key]}
        return httpx.Response(status, json=body, headers={"ETag": self.etag(key)})

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.hook is not None:
            hooked = await self.hook(request)
            if hooked is not None:
                return hooked
        found = RECORD_URL.search(request.url.path)
        key = found.group(1) if found else json.loads(request.content)["MaintenanceOrder"]
        self.log.append((request.method, key, request.headers.get("If-Match")))
        if request.method == "POST":
            body = json.loads(request.content)
            if key in self.orders:
                return httpx.Response(400, json={"error": {"code": "ENTITY_ALREADY_EXISTS"}})
            self.orders[key] = {**body, "LastChangeDateTime": self.stamp()}
            return self.answer(key, 201)
        if request.method == "GET":
            return self.answer(key) if key in self.orders else httpx.Response(404)
        if "If-Match" not in request.headers:
            return httpx.Response(428)
        if key not in self.orders or request.headers["If-Match"] != self.etag(key):
            return httpx.Response(412)
        self.edit(key, **json.loads(request.content))
        return self.answer(key)


def order(n: int, title: str = "pump", updated: datetime = T0) -> WorkOrder:
    return WorkOrder(n, Status.PENDING, title, T0, updated)


@dataclass
class World:
    erp: FakeErp
    store: InMemoryConnectorStateStore
    sink: DeclarativeSink
    echoes: Echoes


def world(
    erp: FakeErp | None = None,
    store: InMemoryConnectorStateStore | None = None,
    *,
    concurrency: int = 8,
    dry_run: bool = False,
    error_path: str | None = None,
) -> World:
    erp = erp or FakeErp()
    store = store or InMemoryConnectorStateStore()
    write = WRITE if error_path is None else {**WRITE, "error_path": error_path}
    api = load_description({"base_url": BASE, "read": READ, "write": write}, "test", {})
    client = httpx.AsyncClient(transport=httpx.MockTransport(erp))
    requester = Requester(client, Limits(timeout=5, retry_budget=5, max_bytes=1 << 20), list)
    echoes = Echoes(store, BASE)
    context = ConnectorContext(state=store, dry_run=dry_run)
    mapping = maintenance_order_mapping()
    sink = DeclarativeSink(api, mapping, requester, echoes, context, concurrency=concurrency)
    return World(erp, store, sink, echoes)


async def test_a_new_order_is_created_and_its_next_change_is_conditional_on_our_write() -> None:
    w = world()
    await w.sink.prepare()
    first = await w.sink.deliver([order(4_000_123)])
    assert first.delivered == [4_000_123]
    key = number(4_000_123)
    assert w.erp.orders[key]["MaintenanceOrderDesc"] == "pump"
    assert w.erp.log == [("POST", key, None)]  # nothing known of it: created, one request
    created = w.erp.etag(key)

    second = await w.sink.deliver([order(4_000_123, "valve", T0 + timedelta(hours=1))])
    assert second.delivered == [4_000_123]
    # No second look: the version our create got back is sent.
    assert w.erp.log[1:] == [("PATCH", key, created)]
    assert w.erp.orders[key]["MaintenanceOrderDesc"] == "valve"


async def test_an_erp_edit_racing_our_write_is_superseded_never_overwritten() -> None:
    w = world()
    await w.sink.deliver([order(7)])
    key = number(7)
    w.erp.edit(key, MaintenanceOrderDesc="fixed in the ERP")  # not read by us yet
    delivery = await w.sink.deliver([order(7, "ours", T0 + timedelta(hours=1))])
    assert delivery.superseded == [7] and not delivery.delivered and not delivery.refused
    assert w.erp.orders[key]["MaintenanceOrderDesc"] == "fixed in the ERP"
    assert [m for m, _, _ in w.erp.log].count("PATCH") == 1  # not sent again without If-Match
    assert w.store.letters == {}
    # Offered again (next run): the ERP's copy is newer than ours, so not written either.
    again = await w.sink.deliver([order(7, "ours", T0 + timedelta(hours=1))])
    assert again.superseded == [7]
    assert again.superseded_by == {7: w.erp.clock}
    assert w.erp.orders[key]["MaintenanceOrderDesc"] == "fixed in the ERP"


async def test_a_record_the_erp_holds_older_than_ours_is_updated_on_the_version_it_showed() -> None:
    erp = FakeErp(clock=T0 - timedelta(days=1))
    erp.orders[number(5)] = {"MaintenanceOrder": number(5), "LastChangeDateTime": erp.stamp()}
    w = world(erp)
    shown = erp.etag(number(5))
    delivery = await w.sink.deliver([order(5, "newer in TracOS")])
    assert delivery.delivered == [5]
    # Created first (nothing known of it), refused as existing, looked up, updated.
    assert erp.log == [
        ("POST", number(5), None),
        ("GET", number(5), None),
        ("PATCH", number(5), shown),
    ]


async def test_a_refused_record_is_dead_lettered_alone() -> None:
    async def refuse_one(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and b'"000000000002"' in request.content:
            return httpx.Response(400, json={"error": {"message": "description too long"}})
        return None

    w = world(FakeErp(hook=refuse_one))
    delivery = await w.sink.deliver([order(1), order(2), order(3)])
    assert sorted(delivery.delivered) == [1, 3]
    assert [p.record for p in delivery.refused] == [2]
    assert "description too long" in delivery.refused[0].reason
    assert delivery.fatal is None
    [letter] = w.store.letters.values()
    assert letter["ref"] == number(2) and letter["direction"] == "outbound"


async def test_retry_after_is_honoured_and_the_write_goes_through() -> None:
    busy = [2]

    async def busy_twice(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and busy[0]:
            busy[0] -= 1
            return httpx.Response(503, headers={"Retry-After": "0"})
        return None

    w = world(FakeErp(hook=busy_twice))
    delivery = await w.sink.deliver([order(1)])
    assert delivery.delivered == [1] and busy == [0]


async def test_writes_are_concurrent_bounded_and_in_order_per_key() -> None:
    running = 0
    most = 0
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response | None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if most == 3:
            release.set()
        await asyncio.wait_for(release.wait(), 5)  # until the gate is full
        running -= 1
        return None

    w = world(FakeErp(hook=slow), concurrency=3)
    orders = [order(n) for n in range(1, 11)]
    # Two versions of order 1 in one batch: the second after the first.
    orders.append(order(1, "second", T0 + timedelta(hours=1)))
    delivery = await w.sink.deliver(orders)
    assert sorted(delivery.delivered) == [1, 1, *range(2, 11)]
    assert most == 3
    assert w.erp.orders[number(1)]["MaintenanceOrderDesc"] == "second"
    ones = [(m, v) for m, k, v in w.erp.log if k == number(1)]
    assert [m for m, _ in ones] == ["POST", "PATCH"]
    assert ones[1][1] is not None  # the version the create got back


async def test_a_fatal_answer_stops_the_delivery() -> None:
    asked = []

    async def refused_credentials(request: httpx.Request) -> httpx.Response | None:
        asked.append(request)
        return httpx.Response(401)

    w = world(FakeErp(hook=refused_credentials), concurrency=1)
    delivery = await w.sink.deliver([order(n) for n in range(1, 6)])
    assert isinstance(delivery.fatal, FatalError)
    assert delivery.delivered == [] and delivery.refused == [] and delivery.superseded == []
    assert len(asked) == 1  # the orders after it are not sent: they stay unsynced


async def test_a_create_the_erp_refuses_for_a_key_it_holds_newer_is_superseded() -> None:
    erp = FakeErp()
    # Created in the ERP since (or by our own create, sent again after its answer was lost).
    erp.orders[number(9)] = {"MaintenanceOrder": number(9), "LastChangeDateTime": erp.stamp()}
    w = world(erp)
    delivery = await w.sink.deliver([order(9, "ours")])
    assert delivery.superseded == [9] and delivery.superseded_by == {9: erp.clock}
    assert not delivery.refused and w.store.letters == {}
    assert [m for m, _, _ in erp.log] == ["POST", "GET"]
    assert "MaintenanceOrderDesc" not in erp.orders[number(9)]


async def test_a_create_refused_for_a_key_the_erp_does_not_hold_is_the_records_refusal() -> None:
    async def refuse_creates(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(400, json={"error": {"message": "plant 9 unknown"}})
        return None

    w = world(FakeErp(hook=refuse_creates))
    delivery = await w.sink.deliver([order(9)])
    assert [p.reason for p in delivery.refused] == [
        'HTTP 400: {"error":{"message":"plant 9 unknown"}}'
    ]
    assert len(w.store.letters) == 1


async def test_our_write_read_back_is_our_echo_a_later_edit_is_not() -> None:
    w = world()
    await w.sink.deliver([order(3)])
    key = number(3)
    mapping = maintenance_order_mapping()
    read = mapping.decode(dict(w.erp.orders[key]))
    assert w.echoes.is_echo(key, content_hash(mapping.encode, read), w.erp.etag(key))
    w.erp.edit(key, MaintenanceOrderDesc="client")
    read = mapping.decode(dict(w.erp.orders[key]))
    assert not w.echoes.is_echo(key, content_hash(mapping.encode, read), w.erp.etag(key))


async def test_a_dry_run_sends_nothing() -> None:
    w = world(dry_run=True)
    delivery = await w.sink.deliver([order(1)])
    assert delivery.delivered == [1] and w.erp.log == [] and w.store.states == {}


async def test_a_2xx_without_the_records_version_is_no_delivery() -> None:
    """An ERP that answers ``200 {"error": ...}`` and writes nothing: with a version read from
    the record, an answer without it (in the body or an ETag) is no proof of a write."""

    async def error_in_a_200(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH":
            return httpx.Response(200, json={"error": {"message": "order locked by user"}})
        return None

    w = world(FakeErp(hook=error_in_a_200))
    await w.sink.deliver([order(6)])
    delivery = await w.sink.deliver([order(6, "valve", T0 + timedelta(hours=1))])
    assert delivery.delivered == [] and [p.record for p in delivery.refused] == [6]
    assert "without the record's version" in delivery.refused[0].reason
    assert "order locked by user" in delivery.refused[0].reason
    [letter] = w.store.letters.values()
    assert letter["direction"] == "outbound"
    assert w.erp.orders[number(6)]["MaintenanceOrderDesc"] == "pump"


async def test_a_2xx_with_write_error_path_in_its_body_is_that_records_refusal() -> None:
    async def error_beside_the_record(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(201, json={"@odata.etag": 'W/"x"', "error": "plant 6 is closed"})
        return None

    w = world(FakeErp(hook=error_beside_the_record), error_path="error")
    delivery = await w.sink.deliver([order(6)])
    assert delivery.delivered == []
    assert [p.reason for p in delivery.refused] == [
        "HTTP 201 with an error (error): plant 6 is closed"
    ]
    assert w.echoes.version(number(6)) is None


async def test_a_204_takes_the_version_from_the_etag_header() -> None:
    async def no_content(request: httpx.Request) -> httpx.Response | None:
        if request.method != "PATCH":
            return None
        erp.hook = None  # the ERP's own answer, without its body
        answer = await erp(request)
        erp.hook = no_content
        return httpx.Response(204, headers={"ETag": answer.headers["ETag"]})

    erp = FakeErp()
    w = world(erp)
    await w.sink.deliver([order(7)])
    erp.hook = no_content
    key = number(7)
    assert (await w.sink.deliver([order(7, "b", T0 + timedelta(hours=1))])).delivered == [7]
    assert w.echoes.version(key) == erp.etag(key)  # from the 204's ETag
    assert (await w.sink.deliver([order(7, "c", T0 + timedelta(hours=2))])).delivered == [7]
    assert [m for m, _, _ in erp.log] == ["POST", "PATCH", "PATCH"]  # no create, no look


async def test_a_write_whose_answer_was_lost_refused_412_when_sent_again_is_delivered() -> None:
    """The ERP applied our PATCH but its answer was lost; the requester sends it again and gets
    412 (our own write moved the version). The record holds what we wrote: delivered."""
    lost = [1]

    async def answer_lost_once(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH" and lost[0]:
            lost[0] -= 1
            await FakeErp.__call__(erp, request)  # applied...
            raise httpx.ReadTimeout("no answer", request=request)  # ...the answer lost
        return None

    erp = FakeErp()
    w = world(erp)
    await w.sink.deliver([order(8)])
    erp.hook = answer_lost_once
    delivery = await w.sink.deliver([order(8, "rewound", T0 + timedelta(hours=1))])
    assert delivery.delivered == [8] and not delivery.superseded
    key = number(8)
    assert [m for m, _, _ in erp.log] == ["POST", "PATCH", "PATCH", "GET"]
    # What the look saw is our write: read back, it is our echo.
    read = maintenance_order_mapping().decode(dict(erp.orders[key]))
    assert w.echoes.is_echo(
        key, content_hash(maintenance_order_mapping().encode, read), erp.etag(key)
    )


async def test_a_lost_create_sent_again_and_refused_as_existing_is_delivered() -> None:
    lost = [1]

    async def answer_lost_once(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and lost[0]:
            lost[0] -= 1
            await FakeErp.__call__(erp, request)
            raise httpx.ReadTimeout("no answer", request=request)
        return None

    erp = FakeErp()
    erp.hook = answer_lost_once
    w = world(erp)
    delivery = await w.sink.deliver([order(9)])
    assert delivery.delivered == [9] and not delivery.superseded
    assert [m for m, _, _ in erp.log] == ["POST", "POST", "GET"]
    assert w.echoes.version(number(9)) == erp.etag(number(9))
