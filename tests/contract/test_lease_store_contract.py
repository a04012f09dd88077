"""One contract for every ``LeaseStore``: MongoDB (judged by the server's clock) and the
in-memory fake the keeper's property tests use (judged by a fake clock)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any, Protocol

import pytest
from pymongo import AsyncMongoClient

from tests.server import Server
from tests.support.leases import InMemoryLeaseStore
from tracos_sync.domain.ports import Lease, LeaseStore, ReplicaRecord
from tracos_sync.tracos.leases import MongoLeaseStore
from tracos_sync.tracos.retry import Retrier

# Short enough to wait out in a test, long enough for a loaded machine's round trip.
TTL = 0.5


class Harness(Protocol):
    store: LeaseStore

    async def expire(self, name: str) -> None:
        """Until the lease of ``name`` has expired by the store's clock."""
        ...

    async def forget(self, replica: str) -> None:
        """Until the heartbeat of ``replica`` has expired."""
        ...


class MongoHarness:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.store = MongoLeaseStore(client, database, "leases", Retrier(5), attempt_seconds=2)

    async def expire(self, name: str) -> None:
        await _until(lambda: self._live(name), False)

    async def _live(self, name: str) -> bool:
        return any(r.live for r in await self.store.leases() if r.name == name)

    async def forget(self, replica: str) -> None:
        del replica
        start = await self._replicas()
        await _until(self._replicas, start - 1)

    async def _replicas(self) -> int:
        return len(await self.store.replicas())


class MemoryHarness:
    def __init__(self) -> None:
        self.store = self._fake = InMemoryLeaseStore()

    async def expire(self, name: str) -> None:
        del name
        self._fake.clock.advance(TTL)

    async def forget(self, replica: str) -> None:
        del replica
        self._fake.clock.advance(TTL)


async def _until(read: Any, wanted: object) -> None:
    """Polls the store: its clock, not ours, says when a lease has expired."""
    async with asyncio.timeout(10):
        while await read() != wanted:  # noqa: ASYNC110 - no event tells the server's clock
            await asyncio.sleep(0.02)


@pytest.fixture(params=["mongo", "memory"])
async def harness(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Harness]:
    if request.param == "memory":
        yield MemoryHarness()
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        server.uri, tz_aware=True, tzinfo=UTC
    )
    database = f"l_{uuid.uuid4().hex[:10]}"
    yield MongoHarness(client, database)
    await client.drop_database(database)
    await client.close()


async def test_a_free_lease_is_taken_with_the_first_epoch_and_refused_to_another(
    harness: Harness,
) -> None:
    store = harness.store
    lease = await store.take("acme", "r1", TTL * 20)
    assert lease is not None
    assert (lease.name, lease.holder, lease.epoch) == ("acme", "r1", 1)
    assert lease.expires_at > lease.since
    assert await store.take("acme", "r2", TTL * 20) is None
    [record] = await store.leases()
    assert (record.name, record.holder, record.epoch, record.live) == ("acme", "r1", 1, True)


async def test_a_renewal_keeps_the_epoch_and_moves_the_expiry(harness: Harness) -> None:
    store = harness.store
    lease = await store.take("acme", "r1", TTL)
    assert lease is not None
    [renewed] = await store.renew([lease], TTL * 20)
    assert renewed is not None
    assert renewed.epoch == lease.epoch
    assert renewed.expires_at > lease.expires_at
    # Only this holder, with this epoch, renews.
    assert await store.renew([_with(lease, holder="r2")], TTL) == [None]
    assert await store.renew([_with(lease, epoch=lease.epoch + 1)], TTL) == [None]
    # ... and those refused did not move the expiry (TTL is shorter than the renewal's).
    [record] = await store.leases()
    assert record.expires_at == renewed.expires_at


async def test_many_leases_are_renewed_at_once_each_answered_in_order(harness: Harness) -> None:
    store = harness.store
    held = [await store.take(f"acme{i}", "r1", TTL * 20) for i in range(5)]
    expiring = await store.take("brisk", "r1", TTL)
    assert expiring is not None and all(held)
    leases = [lease for lease in held if lease is not None]
    await harness.expire("brisk")
    taken = await store.take("brisk", "r2", TTL * 20)
    assert taken is not None
    asked = [leases[0], expiring, *leases[1:], _with(leases[2], epoch=9)]
    answers = await store.renew(asked, TTL * 40)
    assert [a is not None for a in answers] == [True, False, True, True, True, True, False]
    for lease, answer in zip(asked, answers, strict=True):
        if answer is not None:
            assert (answer.name, answer.holder, answer.epoch) == (
                lease.name,
                lease.holder,
                lease.epoch,
            )
            assert answer.expires_at > lease.expires_at
    assert await store.renew([], TTL) == []
    # The lease another holds now was not moved by the renewal of the old one.
    brisk = next(record for record in await store.leases() if record.name == "brisk")
    assert (brisk.holder, brisk.expires_at) == ("r2", taken.expires_at)


async def test_an_expired_lease_is_taken_over_with_the_next_epoch_and_fences_the_old_holder(
    harness: Harness,
) -> None:
    store = harness.store
    old = await store.take("acme", "r1", TTL)
    assert old is not None
    await harness.expire("acme")
    new = await store.take("acme", "r2", TTL * 20)
    assert new is not None
    assert (new.holder, new.epoch) == ("r2", old.epoch + 1)
    assert await store.renew([old], TTL) == [None]
    assert await store.give_back(old) is False
    [record] = await store.leases()
    assert (record.holder, record.epoch, record.live) == ("r2", 2, True)


async def test_an_expired_lease_is_not_renewed_even_by_its_holder(harness: Harness) -> None:
    store = harness.store
    lease = await store.take("acme", "r1", TTL)
    assert lease is not None
    await harness.expire("acme")
    assert await store.renew([lease], TTL) == [None]


async def test_a_lease_given_back_is_free_at_once_and_its_epoch_goes_on(
    harness: Harness,
) -> None:
    store = harness.store
    lease = await store.take("acme", "r1", TTL * 20)
    assert lease is not None
    assert await store.give_back(lease) is True
    [record] = await store.leases()
    assert (record.holder, record.live) == (None, False)
    again = await store.take("acme", "r2", TTL * 20)
    assert again is not None
    assert again.epoch == lease.epoch + 1


async def test_its_own_lease_taken_again_gets_the_next_epoch(harness: Harness) -> None:
    """An answer lost on the way back: the holder takes it again, and the epoch it never saw
    is fenced out."""
    store = harness.store
    first = await store.take("acme", "r1", TTL * 20)
    again = await store.take("acme", "r1", TTL * 20)
    assert first is not None and again is not None
    assert again.epoch == first.epoch + 1
    assert await store.renew([first], TTL) == [None]


async def test_of_racing_takers_exactly_one_wins(harness: Harness) -> None:
    store = harness.store
    won = await asyncio.gather(*(store.take("acme", f"r{i}", TTL * 20) for i in range(8)))
    assert len([lease for lease in won if lease is not None]) == 1


async def test_live_replicas_are_those_whose_heartbeat_has_not_expired_as_they_said(
    harness: Harness,
) -> None:
    store = harness.store
    await store.beat("r1", TTL * 20, ["b", "a"])
    await store.beat("r2", TTL, ["a"])
    assert len(await store.replicas()) == 2
    described = await store.replicas()
    assert [dataclasses.replace(replica, up=0) for replica in described] == [
        ReplicaRecord("r1", ("a", "b"), TTL * 20),
        ReplicaRecord("r2", ("a",), TTL),
    ]
    assert all(0 <= replica.up < TTL for replica in described)
    await harness.forget("r2")
    assert len(await store.replicas()) == 1
    assert [replica.name for replica in await store.replicas()] == ["r1"]
    await store.leave("r1")
    assert len(await store.replicas()) == 0


def _with(lease: Lease, **changes: Any) -> Lease:
    return dataclasses.replace(lease, **changes)
