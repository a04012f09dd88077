"""The registry of every replica (``ReplicaRegistry``), against the server and in memory alike:
what a replica of one lease collection sees of the replicas of the others (issue 25, F1 of the
lease-collection fixes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.server import Server
from tests.support.leases import FakeClock, Registry
from tracos_sync.domain.ports import ReplicaRegistry
from tracos_sync.tracos.replica_registry import MongoReplicaRegistry
from tracos_sync.tracos.retry import Retrier

TTL = 0.6
Doc = dict[str, Any]


@dataclass
class Harness:
    of: Callable[[str, Sequence[str]], ReplicaRegistry]
    wait: Callable[[float], Any]


@pytest.fixture(params=["mongo", "memory"])
async def harness(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Harness]:
    if request.param == "memory":
        clock = FakeClock()
        registry = Registry(clock)

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        yield Harness(registry.of, advance)
        return
    database = f"registry_{uuid.uuid4().hex[:8]}"
    async with AsyncMongoClient[Doc](server.uri) as client:

        def of(leases: str, collections: Sequence[str]) -> ReplicaRegistry:
            return MongoReplicaRegistry(client, database, leases, collections, Retrier(5))

        yield Harness(of, asyncio.sleep)
        await client.drop_database(database)


async def test_replicas_of_other_lease_collections_on_the_same_collections_are_seen(
    harness: Harness,
) -> None:
    mine = harness.of("sync_leases", ["t.a", "t.b"])
    await mine.register("me", TTL, serving=True)
    await harness.of("sync_leases", ["t.a"]).register("fleet", TTL, serving=True)
    await harness.of("other_leases", ["t.c"]).register("apart", TTL, serving=True)
    await harness.of("other_leases", ["t.b", "t.c"]).register("misset", TTL, serving=False)
    (seen,) = await mine.elsewhere()
    assert (seen.replica, seen.leases, seen.collections) == ("misset", "other_leases", ("t.b",))
    assert seen.serving_since is None


async def test_serving_is_since_the_first_registration_as_serving(harness: Harness) -> None:
    other = harness.of("other_leases", ["t.a"])
    assert await other.register("b", TTL, serving=False) is None
    first = await other.register("b", TTL, serving=True)
    await harness.wait(0.05)
    assert await other.register("b", TTL, serving=True) == first
    assert first is not None
    (seen,) = await harness.of("sync_leases", ["t.a"]).elsewhere()
    assert seen.serving_since == first
    assert await other.register("b", TTL, serving=False) is None


async def test_a_serving_replica_counts_a_ttl_beyond_its_heartbeat_a_waiting_one_does_not(
    harness: Harness,
) -> None:
    mine = harness.of("sync_leases", ["t.a"])
    await harness.of("other_leases", ["t.a"]).register("served", TTL, serving=True)
    await harness.of("third_leases", ["t.a"]).register("waited", TTL, serving=False)
    await harness.wait(TTL * 1.4)  # both heartbeats expired
    assert [r.replica for r in await mine.elsewhere()] == ["served"]
    await harness.wait(TTL)
    assert await mine.elsewhere() == []


async def test_an_unregistered_replica_is_gone_at_once(harness: Harness) -> None:
    other = harness.of("other_leases", ["t.a"])
    await other.register("b", TTL, serving=True)
    await other.unregister("b")
    assert await harness.of("sync_leases", ["t.a"]).elsewhere() == []


async def test_a_serving_replica_whose_heartbeat_lapsed_starts_over(harness: Harness) -> None:
    """G1 of the second hostile pass: a replica frozen past its TTL keeps no seniority, so that
    one of another lease collection that began serving meanwhile stays the earlier one."""
    other = harness.of("other_leases", ["t.a"])
    first = await other.register("a", TTL, serving=True)
    await harness.wait(TTL * 0.3)
    assert await other.register("a", TTL, serving=True) == first, "renewed in time: kept"
    await harness.wait(TTL * 1.4)  # its heartbeat lapsed
    again = await other.register("a", TTL, serving=True)
    assert first is not None and again is not None and again > first
    (seen,) = await harness.of("sync_leases", ["t.a"]).elsewhere()
    assert seen.serving_since == again
