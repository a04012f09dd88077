"""Writes on an integration's behalf are fenced by the lease, against the real server: stamped
with the epoch and holder while the lease is held; refused by the server once the lease has
expired by its clock or a later epoch wrote the document, even when the writer's own check
passed (a replica frozen between its check and its write); refused before sending once its own
deadline passed (the only fence an insert has)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from structlog.testing import capture_logs

from tests.builders import T0
from tests.server import Server
from tracos_sync.domain.fence import Fence, LeaseLost
from tracos_sync.domain.model import Problem, Status, WorkOrder
from tracos_sync.domain.ports import DeadLetter, PendingExport
from tracos_sync.tracos.leases import MongoLeaseStore
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier
from tracos_sync.tracos.state import MongoConnectorStateStore

NOW = datetime(2024, 6, 1, tzinfo=UTC)
TTL = 0.5
Doc = dict[str, Any]


@dataclass
class World:
    client: AsyncMongoClient[Doc]
    database: str
    leases: MongoLeaseStore

    async def hold(self, holder: str, ttl: float = TTL, deadline: float = math.inf) -> Fence:
        """The lease for ``holder``, with a local deadline of ``deadline`` (inf: its own check
        always passes, as for a replica frozen between its check and its write)."""
        lease = await self.leases.take("acme", holder, ttl)
        assert lease is not None
        return Fence(lease, deadline)

    async def expire(self) -> None:
        async with asyncio.timeout(10):
            while any(r.live for r in await self.leases.leases()):  # noqa: ASYNC110 - server clock
                await asyncio.sleep(0.02)

    def state(self, fence: Fence) -> MongoConnectorStateStore:
        return MongoConnectorStateStore(
            self.client,
            self.database,
            "state",
            "letters",
            Retrier(5),
            fence=fence,
            leases=self.client[self.database]["leases"],
        )

    def repository(self, fence: Fence) -> MongoWorkOrderRepository:
        return MongoWorkOrderRepository(
            self.client,
            self.database,
            "w",
            Retrier(5),
            owns_client=False,
            fence=fence,
            leases=self.client[self.database]["leases"],
        )

    async def doc(self, collection: str, query: Doc) -> Doc:
        found = await self.client[self.database][collection].find_one(query)
        assert found is not None
        return found


@pytest.fixture
async def world(server: Server) -> AsyncIterator[World]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(server.uri, tz_aware=True, tzinfo=UTC)
    database = f"f_{uuid.uuid4().hex[:10]}"
    yield World(client, database, MongoLeaseStore(client, database, "leases", Retrier(5)))
    await client.drop_database(database)
    await client.close()


def order(number: int, updated: datetime = T0, title: str = "t") -> WorkOrder:
    return WorkOrder(number, Status.PENDING, title, T0 - timedelta(days=1), updated)


def letter(key: str) -> DeadLetter:
    return DeadLetter("inbound", "http", key, f"ref {key}", [Problem("$.x", "bad")], {"x": 1})


async def exports(repository: MongoWorkOrderRepository) -> list[PendingExport]:
    return [
        i async for page in repository.pending(10) for i in page if isinstance(i, PendingExport)
    ]


async def test_writes_under_a_held_lease_are_stamped_with_its_epoch_and_holder(
    world: World,
) -> None:
    fence = await world.hold("r1", ttl=60)
    state, repository = world.state(fence), world.repository(fence)
    await repository.prepare()
    await state.put("watermark", {"at": 1})
    await state.put("watermark", {"at": 2})
    assert (await world.doc("state", {"_id": "watermark"}))["at"] == 2
    assert await state.dead_letter(letter("7"), NOW) == 1
    assert (await repository.apply([order(1), order(2)], NOW)).inserted == 2
    mixed = await repository.apply([order(1, T0 + timedelta(seconds=1)), order(3), order(2)], NOW)
    assert (mixed.inserted, mixed.updated, mixed.stale) == (1, 1, 1)
    await world.client[world.database]["w"].update_one({"number": 2}, {"$set": {"isSynced": False}})
    assert await repository.mark_synced(await exports(repository), NOW) == 1
    stamp = {"epoch": 1, "holder": "r1"}
    assert (await world.doc("state", {"_id": "watermark"}))["syncLease"] == stamp
    assert await state.dead_letter(letter("7"), NOW) == 2
    assert (await world.doc("letters", {}))["syncLease"] == stamp
    assert (await world.doc("letters", {}))["firstAt"] == NOW
    for number in (1, 2, 3):
        assert (await world.doc("w", {"number": number}))["syncLease"]["epoch"] == 1


async def test_a_replica_past_its_lease_changes_nothing_even_where_no_one_wrote_since(
    world: World,
) -> None:
    """Its own check passes (frozen after it): the server's clock refuses the write."""
    old = await world.hold("r1")
    state, repository = world.state(old), world.repository(old)
    await repository.prepare()
    await state.put("watermark", {"at": 1})
    await state.dead_letter(letter("7"), NOW)
    await repository.apply([order(1), order(2, title="two")], NOW)
    await world.client[world.database]["w"].update_one({"number": 2}, {"$set": {"isSynced": False}})
    pending = await exports(repository)
    await world.expire()
    with pytest.raises(LeaseLost):
        await world.state(unchecked(old)).put("watermark", {"at": 2})
    with pytest.raises(LeaseLost):
        await world.state(unchecked(old)).dead_letter(letter("7"), NOW)
    with pytest.raises(LeaseLost):  # refused by the fence, not an edit: never requeued
        await world.repository(unchecked(old)).mark_synced(pending, NOW)
    with pytest.raises(LeaseLost):
        await world.repository(unchecked(old)).apply([order(1, T0 + timedelta(seconds=1))], NOW)
    with pytest.raises(LeaseLost):  # a new work order: inserted by the server from the lease
        await world.repository(unchecked(old)).apply([order(3)], NOW)
    assert await world.client[world.database]["w"].find_one({"number": 3}) is None
    # First writes too: made by the server from the lease document.
    with pytest.raises(LeaseLost):
        await world.state(unchecked(old)).put("cursor", {"at": 1})
    with pytest.raises(LeaseLost):
        await world.state(unchecked(old)).dead_letter(letter("8"), NOW)
    assert await world.client[world.database]["state"].find_one({"_id": "cursor"}) is None
    assert await world.client[world.database]["letters"].count_documents({}) == 1
    assert (await world.doc("state", {"_id": "watermark"}))["at"] == 1
    assert (await world.doc("letters", {}))["count"] == 1
    assert (await world.doc("w", {"number": 1}))["updatedAt"] == T0
    assert (await world.doc("w", {"number": 2}))["isSynced"] is False


def unchecked(fence: Fence, **lease: Any) -> Fence:
    """The lease of ``fence`` (with ``lease`` changed), whose holder's own check passes: what
    only the server can refuse."""
    return Fence(dataclasses.replace(fence.lease, **lease), math.inf)


async def test_a_document_the_next_holder_wrote_is_never_overwritten_by_the_last(
    world: World,
) -> None:
    old = await world.hold("r1")
    await world.expire()
    new = await world.hold("r2", ttl=60)
    assert new.epoch == old.epoch + 1
    await world.state(new).put("watermark", {"at": 5})
    await world.repository(new).prepare()
    await world.repository(new).apply([order(1, title="new")], NOW)
    # The old lease's expiry far ahead, as a primary whose clock is behind would judge it: only
    # the epoch stamp stands between the old holder and the next holder's documents.
    behind = NOW.replace(year=2100)
    with pytest.raises(LeaseLost):
        await world.state(unchecked(old, expires_at=behind)).put("watermark", {"at": 1})
    later = order(1, T0 + timedelta(seconds=1), "old")
    with pytest.raises(LeaseLost):
        await world.repository(unchecked(old, expires_at=behind)).apply([later], NOW)
    with pytest.raises(LeaseLost):
        await world.repository(unchecked(old, expires_at=behind)).apply([order(3)], NOW)
    assert await world.client[world.database]["w"].find_one({"number": 3}) is None
    assert (await world.doc("state", {"_id": "watermark"}))["at"] == 5
    assert (await world.doc("w", {"number": 1}))["title"] == "new"


async def test_past_its_own_deadline_a_replica_sends_no_write_at_all(world: World) -> None:
    """An insert has no filter to fence it: the holder's own deadline does."""
    fence = await world.hold("r1", ttl=60, deadline=time.monotonic() - 1)
    with pytest.raises(LeaseLost):
        await world.repository(fence).apply([order(1)], NOW)
    with pytest.raises(LeaseLost):
        await world.state(fence).put("watermark", {"at": 1})
    with pytest.raises(LeaseLost):
        await world.state(fence).dead_letter(letter("7"), NOW)
    db = world.client[world.database]
    for collection in ("w", "state", "letters"):
        assert await db[collection].find_one({}) is None


async def test_a_mark_refused_by_the_fence_alone_is_a_lost_lease_and_an_edit_is_not(
    world: World,
) -> None:
    """A mark that misses because TracOS changed the document is an edit (sent again next
    sweep); one that misses on the fence alone (a later epoch's stamp) is the lease lost."""
    held = await world.hold("r1", ttl=60)
    repository = world.repository(held)
    await repository.prepare()
    await repository.apply([order(1), order(2), order(3)], NOW)
    collection = world.client[world.database]["w"]
    await collection.update_many({}, {"$set": {"isSynced": False}})
    pending = await exports(repository)
    await collection.update_one({"number": 2}, {"$set": {"title": "edited in TracOS"}})
    assert await repository.mark_synced(pending, NOW) == 2  # the edit: no LeaseLost
    assert held.writable()
    await collection.update_many({}, {"$set": {"isSynced": False}})
    pending = await exports(repository)
    await collection.update_one({"number": 3}, {"$set": {"syncLease.epoch": held.epoch + 1}})
    with pytest.raises(LeaseLost):
        await repository.mark_synced(pending, NOW)
    assert not held.writable()


@pytest.mark.parametrize("change", ["renamed", "dropped"])
async def test_a_new_lease_document_starts_above_every_stamp_of_its_collections(
    world: World, change: str
) -> None:
    """An integration renamed (same collections), or the lease collection dropped or changed:
    the new lease document's epoch is above every stamp its writes meet, so its holder marks,
    updates and writes state (no fence refusal from an old lineage's stamps)."""
    collections = [(world.database, name) for name in ("w", "state", "letters")]
    stamped = {"acme": collections, "renamed": collections}
    leases = MongoLeaseStore(world.client, world.database, "leases", Retrier(5), stamped=stamped)
    world.leases = leases
    for _ in range(3):  # epoch 3 stamped
        fence = await world.hold("r1", ttl=60)
        assert await leases.give_back(fence.lease)
    fence = await world.hold("r1", ttl=60)
    assert fence.epoch == 4
    await world.repository(fence).prepare()
    await world.repository(fence).apply([order(1), order(2)], NOW)
    await world.state(fence).put("watermark", {"at": 1})
    await world.state(fence).dead_letter(letter("7"), NOW)
    if change == "dropped":
        await world.client[world.database]["leases"].drop()
        name = "acme"
    else:
        name = "renamed"
    lease = await leases.take(name, "r2", 60)
    assert lease is not None
    assert lease.epoch == 5
    new = Fence(lease, math.inf)
    collection = world.client[world.database]["w"]
    await collection.update_many({}, {"$set": {"isSynced": False}})
    assert await world.repository(new).mark_synced(await exports(world.repository(new)), NOW) == 2
    await world.state(new).put("watermark", {"at": 2})
    assert await world.state(new).dead_letter(letter("7"), NOW) == 2
    updated = await world.repository(new).apply([order(1, T0 + timedelta(seconds=1))], NOW)
    assert updated.updated == 1
    assert (await world.doc("state", {"_id": "watermark"}))["syncLease"]["epoch"] == 5


async def test_a_lease_taken_again_starts_above_the_stamps_of_another_lease_collection(
    world: World,
) -> None:
    """G2 of the second hostile pass: a (sync_leases) held the lease, b (a mis-set
    LEASE_COLLECTION) served meanwhile and stamped higher epochs, stood aside; a takes its old
    lease document again above b's stamps, so its writes to what b wrote go through (they were
    refused one lost lease at a time, stalling edits for seconds)."""
    collections = [(world.database, name) for name in ("w", "state", "letters")]
    stamped = {"acme": collections}
    mine = MongoLeaseStore(world.client, world.database, "leases", Retrier(5), stamped=stamped)
    other = MongoLeaseStore(world.client, world.database, "typo", Retrier(5), stamped=stamped)
    world.leases = mine
    first = await world.hold("a", ttl=60)
    await world.repository(first).prepare()
    await world.repository(first).apply([order(1), order(2)], NOW)
    await world.state(first).put("watermark", {"at": 0})
    assert await mine.give_back(first.lease)
    for _ in range(3):  # b's epochs climb past a's
        taken = await other.take("acme", "b", 60)
        assert taken is not None and await other.give_back(taken)
    taken = await other.take("acme", "b", 60)
    assert taken is not None
    b = Fence(taken, math.inf)
    later = [order(1, T0 + timedelta(seconds=1)), order(2, T0 + timedelta(seconds=1))]
    assert (await world.repository(b).apply(later, NOW)).updated == 2
    await world.state(b).put("watermark", {"at": 1})
    assert await other.give_back(taken)  # b stood aside
    assert (await world.doc("w", {"number": 2}))["syncLease"]["epoch"] == b.epoch > 3
    again = await mine.take("acme", "a", 60)
    assert again is not None and again.epoch == b.epoch + 1
    fence = Fence(again, math.inf)
    await world.client[world.database]["w"].update_many({}, {"$set": {"isSynced": False}})
    with capture_logs() as logs:
        assert (
            await world.repository(fence).mark_synced(await exports(world.repository(fence)), NOW)
            == 2
        )
        updated = await world.repository(fence).apply([order(2, T0 + timedelta(seconds=2))], NOW)
        await world.state(fence).put("watermark", {"at": 2})
    assert updated.updated == 1 and fence.writable()
    assert not [e for e in logs if e["event"] == "lease.foreign_stamp"], logs


async def test_a_stamp_above_every_epoch_of_the_lease_collection_is_said(world: World) -> None:
    """Only a replica keeping its leases elsewhere (another LEASE_COLLECTION) stamps above the
    lease document's epoch; a take-over within the collection is not said."""
    old = await world.hold("r1")
    repository = world.repository(old)
    await repository.prepare()
    await repository.apply([order(1), order(2)], NOW)
    collection = world.client[world.database]["w"]
    await world.expire()
    new = await world.hold("r2", ttl=60)
    await collection.update_many({}, {"$set": {"isSynced": False}})
    pending = await exports(world.repository(new))
    await world.repository(new).mark_synced(pending[:1], NOW)  # stamped by the next holder
    behind = NOW.replace(year=2100)
    with capture_logs() as logs, pytest.raises(LeaseLost):
        await world.repository(unchecked(old, expires_at=behind)).mark_synced(pending, NOW)
    assert not [e for e in logs if e["event"] == "lease.foreign_stamp"]
    await collection.update_one(
        {"number": 2}, {"$set": {"syncLease": {"epoch": new.epoch + 5, "holder": "elsewhere"}}}
    )
    with capture_logs() as logs, pytest.raises(LeaseLost):
        await world.repository(new).mark_synced(pending[1:], NOW)
    said = [e for e in logs if e["event"] == "lease.foreign_stamp"]
    assert len(said) == 1 and said[0]["stamp_holder"] == "elsewhere", logs
    # Blames no replica that may have stood aside: says what happens now, and when to act.
    reason = str(said[0]["reason"])
    assert "taken again above the stamp" in reason and "Said again and again" in reason, reason
