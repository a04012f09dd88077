"""Replicas of one database whose LEASE_COLLECTION differs (issue 25, F1 of the lease-collection
fixes): one lease collection at a time serves a TracOS collection; a replica of another one
waits, holding nothing and not counted by its own lease collection's replicas, and both sides
say so, naming both collections; the one that waits serves once the others are gone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from structlog.testing import capture_logs

from tests.support.leases import (
    FakeClock,
    InMemoryLeaseStore,
    InMemoryReplicaRegistry,
    RecordingWork,
    Registry,
)
from tracos_sync.leases.collection_guard import CollectionGuard
from tracos_sync.leases.keeper import LeaseKeeper

TTL = 15.0
NAMES = [f"i{n}" for n in range(5)]
COLLECTIONS = [f"tracos.{name}" for name in NAMES]


@dataclass
class Database:
    """One TracOS database: a lease store per lease collection, one registry of replicas."""

    clock: FakeClock = field(default_factory=FakeClock)
    stores: dict[str, InMemoryLeaseStore] = field(default_factory=dict)
    registry: Registry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = Registry(self.clock)

    def replica(self, name: str, leases: str, *, pause: bool = False) -> LeaseKeeper:
        store = self.stores.setdefault(leases, InMemoryLeaseStore(self.clock))
        registry: InMemoryReplicaRegistry = self.registry.of(leases, COLLECTIONS)
        registry.pause = pause
        guard = CollectionGuard(registry, name, TTL, leases)
        work = RecordingWork(store)
        return LeaseKeeper(store, NAMES, name, TTL, work=work, clock=self.clock, guard=guard)

    def rounds(self, keepers: list[LeaseKeeper], count: int = 3) -> None:
        for _ in range(count):
            self.clock.advance(TTL / 3)
            for keeper in keepers:
                asyncio.run(keeper.round())


def conflicts(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in logs if e["event"] == "lease.collection_conflict"]


def assert_names_both_and_picks_none(said: dict[str, object]) -> None:
    """G3 of the second hostile pass: which collection serves says only whose replicas came
    first (a typo may), so the advice names both, says they differ, and recommends neither."""
    reason = str(said["reason"])
    assert "differ in LEASE_COLLECTION (other_leases, sync_leases)" in reason, reason
    assert "pick the one you intend" in reason and "LEASE_COLLECTION=" not in reason, reason


def test_a_replica_of_another_lease_collection_waits_and_both_say_so() -> None:
    db = Database()
    a = db.replica("a", "sync_leases")
    db.rounds([a])
    assert sorted(a.fences) == NAMES
    b = db.replica("b", "other_leases")
    with capture_logs() as logs:
        asyncio.run(b.round())  # its first round: before any lease is taken
    assert not b.fences and not db.stores["other_leases"].stored
    (said,) = conflicts(logs)
    assert said["replica"] == "b" and said["other_lease_collections"] == ["sync_leases"]
    assert_names_both_and_picks_none(said)
    with capture_logs() as logs:
        db.rounds([a, b], 6)
    assert sorted(a.fences) == NAMES and not b.fences
    assert [e["replica"] for e in conflicts(logs)] == ["a"], "said once per change, each side"
    assert not asyncio.run(db.stores["other_leases"].replicas()), "b does not count as live"


def test_a_waiting_replica_does_not_count_among_its_own_lease_collections_replicas() -> None:
    """b (other_leases) came first and serves; a and c (sync_leases) wait; b stops: a and c
    share the integrations, each counting the other alone."""
    db = Database()
    b = db.replica("b", "other_leases")
    db.rounds([b])
    a, c = db.replica("a", "sync_leases"), db.replica("c", "sync_leases")
    db.rounds([b, a, c])
    assert not a.fences and not c.fences and sorted(b.fences) == NAMES
    asyncio.run(b.leave())
    db.rounds([a, c], 4)
    assert sorted([*a.fences, *c.fences]) == NAMES
    assert sorted([len(a.fences), len(c.fences)]) == [2, 3]


def test_of_two_replicas_of_different_lease_collections_starting_together_one_serves() -> None:
    """Each registers before it reads, so at least one sees the other; both order them alike."""
    db = Database()
    a = db.replica("a", "sync_leases", pause=True)
    b = db.replica("b", "other_leases", pause=True)

    async def together() -> None:
        await asyncio.gather(a.round(), b.round())

    for _ in range(4):
        db.clock.advance(TTL / 3)
        asyncio.run(together())
        assert not (a.fences and b.fences)
    assert sorted([*a.fences, *b.fences]) == NAMES


def test_a_waiting_replica_serves_a_ttl_after_the_others_heartbeat_expired() -> None:
    """The replica that served died without a word: its leases may run until a TTL after its
    last heartbeat, and the waiting one takes nothing before."""
    db = Database()
    a = db.replica("a", "sync_leases")
    db.rounds([a])
    b = db.replica("b", "other_leases")
    db.rounds([b], 1)
    counted_until = db.registry.entries["a"].expires + TTL
    while db.clock.now + TTL / 3 < counted_until:
        db.rounds([b], 1)
        assert not b.fences, db.clock.now
    db.rounds([b], 2)
    assert sorted(b.fences) == NAMES


def test_a_replica_frozen_while_the_other_lease_collection_took_over_waits_when_it_wakes() -> None:
    """G1 of the second hostile pass: a (the right collection) serves, b (a typo) waits; a is
    frozen past twice the TTL, so b serves, as designed; a wakes: it counts as serving since it
    woke, not since it first served, so it waits while b serves (both served ~8 s before)."""
    db = Database()
    a = db.replica("a", "sync_leases")
    db.rounds([a])
    b = db.replica("b", "other_leases")
    db.rounds([a, b])
    assert sorted(a.fences) == NAMES and not b.fences
    while not b.fences:  # a frozen: no round of its own
        db.rounds([b], 1)
    assert sorted(b.fences) == NAMES
    with capture_logs() as logs:
        for _ in range(6):
            db.rounds([a, b], 1)
            assert not a.fences, db.clock.now
            assert sorted(b.fences) == NAMES
    said = {str(e["replica"]): str(e["this_replica"]) for e in conflicts(logs)}
    assert said == {"a": "waits, serving nothing", "b": "serves (the others wait)"}, said
    for event in conflicts(logs):  # the typo serves: neither side recommends it
        assert_names_both_and_picks_none(event)
