"""Each replica's share, decided alone from what the store says: within one of the others',
with no churn once balanced; integrations only some replicas know are shared among those."""

from __future__ import annotations

from tracos_sync.domain.ports import LeaseRecord, ReplicaRecord
from tracos_sync.leases.shares import plan

NAMES = [f"i{n:02}" for n in range(12)]


def holding(counts: dict[str, int]) -> list[LeaseRecord]:
    names = iter(NAMES)
    return [
        LeaseRecord(next(names), replica, 1, None, None, True)
        for replica, count in counts.items()
        for _ in range(count)
    ]


def replicas(*names: str, knows: list[str] = NAMES) -> list[ReplicaRecord]:
    return [ReplicaRecord(name, tuple(knows), 9.0) for name in names]


def held_by(leases: list[LeaseRecord], replica: str) -> set[str]:
    return {record.name for record in leases if record.holder == replica}


def test_above_the_floor_one_is_given_back_to_a_replica_below_it_and_only_it_takes() -> None:
    counts = {"a": 3, "b": 3, "c": 3, "d": 2, "e": 1}  # 12 on 5: the ceiling alone allows this
    leases = holding(counts)
    live = replicas(*counts)
    free = "i99"
    for name in ("a", "b", "c"):
        shares = plan(name, NAMES, live, leases)
        assert (shares.floor, shares.ceiling) == (2, 3)
        assert len(shares.to_give_back(held_by(leases, name))) == 1
    d = plan("d", [*NAMES, free], live, leases)
    assert d.to_give_back(held_by(leases, "d")) == []
    assert not d.may_take("i00", held_by(leases, "d")), "d is at the floor while e is below"
    e = plan("e", NAMES, live, leases)
    assert e.may_take("i00", held_by(leases, "e"))


def test_balanced_nothing_moves() -> None:
    counts = {"a": 3, "b": 3, "c": 2, "d": 2, "e": 2}
    leases = holding(counts)
    live = replicas(*counts)
    for name, count in counts.items():
        shares = plan(name, NAMES, live, leases)
        assert shares.to_give_back(held_by(leases, name)) == []
        assert not shares.may_take("i00", held_by(leases, name)) or count < 3


def test_an_integration_some_live_replica_does_not_know_is_taken_by_one_that_knows_it() -> None:
    leases = holding({"a": 6, "b": 6})
    live = [*replicas("a"), *replicas("b", knows=NAMES[:-1])]
    a = plan("a", NAMES, live, leases)
    assert NAMES[-1] not in a.shared
    assert a.may_take(NAMES[-1], held_by(leases, "a"))
    assert NAMES[-1] not in a.to_give_back(held_by(leases, "a") | {NAMES[-1]})
