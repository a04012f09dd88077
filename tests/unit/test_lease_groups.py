"""Integrations only some replicas know (integrations files that differ during a rolling update)
are shared among those replicas alone: each one's share of them counts only the replicas that
know them, so they are balanced among those, as the integrations every replica knows are among
all (issue 25, F3 of the lease-collection fixes)."""

from __future__ import annotations

from tests.unit.test_lease_keeper import World, rounds, served
from tracos_sync.domain.ports import LeaseRecord, ReplicaRecord
from tracos_sync.leases.shares import plan

OLD = [f"old{n}" for n in range(6)]
NEW = [f"new{n}" for n in range(4)]


def test_integrations_only_the_updated_replicas_know_are_balanced_among_them() -> None:
    """a and b run the old file (6 integrations), c and d the new one (the same 6 and 4 more):
    the 4 go 2 and 2 to c and d, the 6 that everyone knows are shared by all four."""
    world = World()
    keepers = [world.replica("a", OLD)[0], world.replica("b", OLD)[0]]
    keepers += [world.replica("c", OLD + NEW)[0], world.replica("d", OLD + NEW)[0]]
    rounds(keepers, world, 10)
    holders = served(keepers)
    assert sorted(holders) == sorted(OLD + NEW)
    assert all(len(replicas) == 1 for replicas in holders.values()), holders
    new = {k.replica: len(set(k.fences) & set(NEW)) for k in keepers}
    assert new == {"a": 0, "b": 0, "c": 2, "d": 2}, new
    old = sorted(len(set(k.fences) & set(OLD)) for k in keepers)
    assert old == [1, 1, 2, 2], old


def test_a_replica_over_its_share_of_a_group_gives_back_to_one_below_it_in_that_group() -> None:
    """c holds all 4 integrations only c and d know (it started first); d, which knows them,
    holds none: c gives one back, and d may take it; a, which does not know them, may not."""
    replicas = [
        ReplicaRecord("a", tuple(OLD), 9.0),
        ReplicaRecord("c", tuple(OLD + NEW), 9.0),
        ReplicaRecord("d", tuple(OLD + NEW), 9.0),
    ]
    leases = [LeaseRecord(name, "c", 1, None, None, True) for name in NEW]
    c = plan("c", OLD + NEW, replicas, leases)
    assert (c.groups["new0"].ceiling, c.groups["new0"].floor) == (2, 2)
    assert len(c.to_give_back(NEW)) == 2
    d = plan("d", OLD + NEW, replicas, leases)
    assert d.may_take("new3", set())
    a = plan("a", OLD, replicas, leases)
    assert not a.may_take("new3", set())
    assert c.shared == frozenset(OLD) and (c.floor, c.ceiling) == (2, 2)
