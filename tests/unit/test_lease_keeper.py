"""The lease keeper on a fake clock and the in-memory lease store: taking, renewing, fair share,
take-over of a frozen replica's leases, giving back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from tests.support.leases import FakeClock, InMemoryLeaseStore, RecordingWork
from tracos_sync.domain.errors import DatabaseUnavailable
from tracos_sync.domain.fence import Fence, LeaseLost
from tracos_sync.domain.ports import Lease
from tracos_sync.leases.keeper import LeaseKeeper

TTL = 15.0
NAMES = [f"i{n}" for n in range(5)]


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    store: InMemoryLeaseStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = InMemoryLeaseStore(self.clock)

    def replica(self, name: str, names: list[str] = NAMES) -> tuple[LeaseKeeper, RecordingWork]:
        work = RecordingWork(self.store)
        return LeaseKeeper(self.store, names, name, TTL, work=work, clock=self.clock), work


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_a_lone_replica_takes_every_lease_and_serves_it() -> None:
    world = World()
    keeper, work = world.replica("a")
    share = run(keeper.round())
    assert share is not None and (share.live, share.share) == (1, 5)
    assert sorted(work.serving) == NAMES
    assert all(world.store.holder_now(name) == ("a", 1) for name in NAMES)


def test_renewals_keep_the_epoch_and_move_the_deadline() -> None:
    world = World()
    keeper, work = world.replica("a")
    run(keeper.round())
    before = work.serving["i0"].deadline
    for _ in range(10):  # far beyond one TTL, renewed every TTL / 3
        world.clock.advance(keeper.interval)
        run(keeper.round())
    fence = work.serving["i0"]
    assert fence.epoch == 1 and fence.writable()
    assert fence.deadline > before + 3 * TTL


def test_a_replica_that_joins_gets_its_share_from_the_others() -> None:
    world = World()
    a, work_a = world.replica("a")
    b, work_b = world.replica("b")
    run(a.round())
    run(b.round())  # everything is held: b only says it is there
    assert not work_b.serving
    with capture_logs() as logs:
        run(a.round())  # two live replicas: a keeps its share, 3, and gives 2 back
    assert len(work_a.serving) == 3
    given = [e for e in logs if e["event"] == "lease.given_back"]
    assert len(given) == 2 and all("fair share" in e["reason"] for e in given)
    assert all(work_a.stopped_while_held), "work stops before its lease is given back"
    run(b.round())
    assert len(work_b.serving) == 2
    assert set(work_a.serving).isdisjoint(work_b.serving)
    assert all(world.store.holder_now(name) is not None for name in NAMES)


def test_a_frozen_replicas_leases_are_taken_over_within_two_ttl_and_it_stops_on_waking() -> None:
    world = World()
    a, work_a = world.replica("a")
    b, work_b = world.replica("b")
    run(a.round())
    run(b.round())
    run(a.round())
    run(b.round())
    frozen = dict(work_a.serving)
    # a is frozen (SIGSTOP): only b goes on, every TTL / 3.
    taken_at = None
    for _ in range(7):
        world.clock.advance(b.interval)
        run(b.round())
        if len(work_b.serving) == len(NAMES) and taken_at is None:
            taken_at = world.clock.now
    assert taken_at is not None and taken_at <= 2 * TTL
    assert all(work_b.serving[name].epoch == 2 for name in frozen)
    # a wakes: nothing may be written on its old leases, and it says so once per lease.
    assert not any(fence.writable() for fence in frozen.values())
    with pytest.raises(LeaseLost):
        next(iter(frozen.values())).check()
    with capture_logs() as logs:
        run(a.round())
    lost = [e for e in logs if e["event"] == "lease.lost"]
    assert sorted(e["integration"] for e in lost) == sorted(frozen)
    assert not work_a.serving
    assert not any(work_a.stopped_while_held[-len(frozen) :])


def test_a_store_out_of_reach_keeps_leases_until_their_deadline_then_loses_them() -> None:
    world = World()
    keeper, work = world.replica("a")
    run(keeper.round())
    world.store.failing = DatabaseUnavailable("away")
    world.clock.advance(keeper.interval)
    with capture_logs() as logs:
        assert run(keeper.round()) is None
        assert len(work.serving) == len(NAMES)
        world.clock.advance(TTL)
        assert run(keeper.round()) is None
    assert not work.serving
    assert [e["event"] for e in logs].count("lease.store_failing") == 1
    assert [e["event"] for e in logs].count("lease.lost") == len(NAMES)


def test_a_renewal_that_comes_late_is_said() -> None:
    world = World()
    keeper, _ = world.replica("a", ["i0"])
    run(keeper.round())
    world.clock.advance(TTL * 0.7)  # two rounds missed
    with capture_logs() as logs:
        run(keeper.round())
    assert [e["event"] for e in logs] == ["lease.renewed_late"]
    # What was left of the lease when the renewal went out: 0.9 TTL - 0.7 TTL.
    assert logs[0]["left"] == round(TTL * 0.2, 2)


def test_leaving_stops_the_work_then_gives_every_lease_back() -> None:
    world = World()
    keeper, work = world.replica("a")
    run(keeper.round())
    run(keeper.leave())
    assert not work.serving
    assert all(work.stopped_while_held)
    assert all(world.store.holder_now(name) is None for name in NAMES)
    assert run(world.store.replicas()) == []
    other, work_b = world.replica("b")
    run(other.round())  # at once, not after a TTL
    assert len(work_b.serving) == len(NAMES)
    assert all(fence.epoch == 2 for fence in work_b.serving.values())


def test_run_goes_round_until_stopped_and_leaves() -> None:
    async def scenario() -> None:
        world = World()
        work = RecordingWork(world.store)
        keeper = LeaseKeeper(world.store, NAMES, "a", TTL, work=work, clock=world.clock)
        stop = asyncio.Event()
        task = asyncio.create_task(keeper.run(stop))
        await asyncio.wait_for(work.all_started(len(NAMES)), 5)
        stop.set()
        await task
        assert not work.serving
        assert all(world.store.holder_now(name) is None for name in NAMES)

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_a_lease_whose_work_will_not_stop_is_left_to_expire_not_given_back() -> None:
    world = World()
    keeper, work = world.replica("a", ["i0"])
    run(keeper.round())

    async def stuck(name: str) -> bool:
        del name
        return False

    work.stop = stuck  # type: ignore[method-assign]
    with capture_logs() as logs:
        run(keeper.leave())
    assert world.store.holder_now("i0") == ("a", 1)
    assert [e["reason"] for e in logs if e["event"] == "lease.given_back"] == [
        "stopping (left to expire)"
    ]


def rounds(keepers: list[LeaseKeeper], world: World, count: int = 6) -> None:
    for _ in range(count):
        world.clock.advance(TTL / 3)
        for keeper in keepers:
            run(keeper.round())


def served(keepers: list[LeaseKeeper]) -> dict[str, list[str]]:
    holders: dict[str, list[str]] = {}
    for keeper in keepers:
        for name in keeper.fences:
            holders.setdefault(name, []).append(keeper.replica)
    return holders


@pytest.mark.parametrize(
    ("a_knows", "b_knows"),
    [(NAMES, NAMES[:3]), (NAMES[:4], NAMES), (NAMES[:3], NAMES[2:])],
    ids=["one file has fewer", "one file has one more", "each knows some"],
)
def test_integrations_files_that_differ_are_said_and_every_integration_is_served(
    a_knows: list[str], b_knows: list[str]
) -> None:
    world = World()
    a, _ = world.replica("a", a_knows)
    b, _ = world.replica("b", b_knows)
    with capture_logs() as logs:
        rounds([a, b], world)
    holders = served([a, b])
    assert sorted(holders) == sorted(set(a_knows) | set(b_knows))
    assert all(len(replicas) == 1 for replicas in holders.values()), holders
    warned = [e for e in logs if e["event"] == "lease.replicas_disagree"]
    assert {e["replica"] for e in warned} == {"a", "b"}
    assert len(warned) == 2, "said once per change, not every round"


def test_replicas_with_different_lease_seconds_are_said() -> None:
    world = World()
    a, _ = world.replica("a")
    work = RecordingWork(world.store)
    b = LeaseKeeper(world.store, NAMES, "b", TTL * 2, work=work, clock=world.clock)
    with capture_logs() as logs:
        rounds([a, b], world, 2)
    assert any(e["event"] == "lease.replicas_disagree" for e in logs)


@pytest.mark.parametrize(
    ("replicas", "integrations", "start"), [(5, 12, "at once"), (4, 6, "one joins three")]
)
def test_shares_even_out_to_within_one_and_then_stay(
    replicas: int, integrations: int, start: str
) -> None:
    """Shares are at most the ceiling and at least the floor: 5 on 12 is 3,3,2,2,2 (not
    3,3,3,2,1), and a fourth joining three on 6 gets its share (not none)."""
    world = World()
    names = [f"i{n}" for n in range(integrations)]
    keepers = [world.replica(f"r{n}", names)[0] for n in range(replicas)]
    if start == "one joins three":
        rounds(keepers[:-1], world)
        assert sorted(len(k.fences) for k in keepers[:-1]) == [2, 2, 2]
    rounds(keepers, world, 10)
    counts = sorted(len(k.fences) for k in keepers)
    assert counts[-1] - counts[0] <= 1 and sum(counts) == integrations, counts
    assert all(len(h) == 1 for h in served(keepers).values())
    with capture_logs() as logs:
        rounds(keepers, world, 6)
    assert not [e for e in logs if e["event"] in ("lease.given_back", "lease.taken")]


def test_after_an_outage_the_first_replica_back_does_not_count_itself_alone() -> None:
    world = World()
    names = [f"i{n}" for n in range(6)]
    keepers = [world.replica(f"r{n}", names)[0] for n in range(3)]
    rounds(keepers, world)
    world.store.failing = DatabaseUnavailable("away")
    rounds(keepers, world, 3 * 3)  # three TTLs: every lease and heartbeat expires
    assert not any(k.fences for k in keepers)
    world.store.failing = None
    first = run(keepers[0].round())
    assert first is not None and first.live == 3 and len(keepers[0].fences) == 2
    rounds(keepers, world, 6)
    assert sorted(len(k.fences) for k in keepers) == [2, 2, 2]


@dataclass
class SlowToStop(RecordingWork):
    """Each stop takes half a TTL (a batch finishing within its grace, then a cancellation)."""

    clock: FakeClock | None = None

    async def stop(self, name: str) -> bool:
        assert self.clock is not None
        self.clock.advance(TTL / 2)
        return await super().stop(name)


def test_leases_lost_at_a_renewal_do_not_hold_up_the_renewal_of_the_others() -> None:
    world = World()
    work = SlowToStop(world.store, clock=world.clock)
    keeper = LeaseKeeper(world.store, NAMES, "a", TTL, work=work, clock=world.clock)
    run(keeper.round())
    world.clock.advance(keeper.interval)
    for name in ("i0", "i1"):  # taken over behind a's back
        world.store.stored[name].holder = "b"
        world.store.stored[name].epoch += 1
    renewed_at = world.clock.now
    with capture_logs() as logs:
        run(keeper.round())
    lost = sorted(e["integration"] for e in logs if e["event"] == "lease.lost")
    assert lost == ["i0", "i1"]
    # The others were renewed when the round began, not once the two had stopped (a TTL later,
    # past their expiry).
    for name in NAMES[2:]:
        stored = world.store.stored[name]
        assert (stored.holder, stored.expires) == ("a", renewed_at + TTL), name


class SlowTakes(InMemoryLeaseStore):
    """Each take waits a round trip; how many were in flight at once is kept."""

    in_flight = 0
    most = 0

    async def take(self, name: str, holder: str, ttl: float) -> Lease | None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            return await super().take(name, holder, ttl)
        finally:
            self.in_flight -= 1


def test_hundreds_of_free_leases_are_taken_a_few_at_once_and_never_above_the_share() -> None:
    world = World()
    world.store = SlowTakes(world.clock)
    names = [f"i{n}" for n in range(200)]
    a, b, c = (
        LeaseKeeper(world.store, names, r, TTL, work=RecordingWork(world.store), clock=world.clock)
        for r in "abc"
    )
    run(a.round())  # alone: all 200
    assert len(a.fences) == 200 and world.store.most > 1, "asked one after another"
    run(b.round())
    run(c.round())
    run(a.round())  # three live: a keeps 67 and gives 133 back

    run(b.round())  # 133 free, b's share 67

    assert len(a.fences) == 67 and len(b.fences) in {66, 67}  # 67 + 67 + 66


@dataclass
class LoadedWork(RecordingWork):
    """Each integration started costs the process time (its first sweep, its indexes): the
    clock moves on at every start."""

    clock: FakeClock | None = None
    cost: float = 0.0

    async def start(self, name: str, fence: Fence) -> None:
        assert self.clock is not None
        self.clock.advance(self.cost)
        await super().start(name, fence)


def test_a_replica_taking_hundreds_of_leases_renews_the_first_ones_before_their_deadline() -> None:
    """Taking 300 leases whose work costs 0.2 s each to start would take a minute in one round:
    the first ones taken would be past their deadline before the next round renewed them (seen
    with 300 integrations on one replica: leases lost and taken again in waves)."""
    world = World()
    names = [f"i{n}" for n in range(300)]
    work = LoadedWork(world.store, clock=world.clock, cost=0.2)
    keeper = LeaseKeeper(world.store, names, "a", TTL, work=work, clock=world.clock)
    rounds = 0
    with capture_logs() as logs:
        while len(keeper.fences) < len(names):
            rounds += 1
            assert rounds < 100, f"{len(keeper.fences)} held after 100 rounds"
            share = run(keeper.round())
            assert share is not None
            if not share.more:
                world.clock.advance(keeper.interval)
        for _ in range(6):  # two TTLs more: every lease stays held
            world.clock.advance(keeper.interval)
            run(keeper.round())
    assert [e for e in logs if e["event"] == "lease.lost"] == []
    assert len(keeper.fences) == len(names) and all(f.writable() for f in keeper.fences.values())


def test_rounds_begin_an_interval_apart_however_long_one_took() -> None:
    """A round that took most of an interval (leases taken, their work started) is followed by
    the next one an interval after it began, so that what it took is renewed in time."""

    beaten: list[float] = []
    second = asyncio.Event()

    class CountedBeats(InMemoryLeaseStore):
        async def beat(self, replica: str, ttl: float, integrations: Sequence[str]) -> None:
            beaten.append(time.monotonic())
            if len(beaten) == 2:
                second.set()
            await super().beat(replica, ttl, integrations)

    async def scenario() -> None:
        clock = FakeClock()
        store = CountedBeats(clock)
        ttl = 3.0  # rounds 1 s apart
        work = LoadedWork(store, clock=clock, cost=0.9)  # the first round takes 0.9 s
        keeper = LeaseKeeper(store, ["i0"], "a", ttl, work=work, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(keeper.run(stop))
        await second.wait()
        stop.set()
        await task
        # The second round 0.1 s (by the clock) after the first ended, not a whole interval.
        assert beaten[1] - beaten[0] < 0.6

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_a_lease_still_ours_in_the_store_but_lost_here_is_taken_again_at_once() -> None:
    """Its deadline here passed (a round came late: a loaded store), yet the store still has it
    as ours: taken again in the same round, with the next epoch, not left unserved until it
    expires (at 300 integrations, each such lease cost its integration a TTL and more)."""
    world = World()
    keeper, work = world.replica("a", ["i0"])
    run(keeper.round())
    world.clock.advance(TTL * 0.95)  # past the holder's deadline (0.9), not the store's expiry
    with capture_logs() as logs:
        run(keeper.round())
    events = [e["event"] for e in logs]
    assert events[:2] == ["lease.lost", "lease.taken"], events
    assert work.serving["i0"].epoch == 2 and work.serving["i0"].writable()
    assert world.store.holder_now("i0") == ("a", 2)


def test_a_round_renews_before_its_other_round_trips() -> None:
    """On a loaded store each round trip takes long: the renewals go first, not after the
    heartbeat and the reads of the replicas and leases."""

    class SlowBeats(InMemoryLeaseStore):
        async def beat(self, replica: str, ttl: float, integrations: Sequence[str]) -> None:
            self.clock.advance(TTL * 0.3)
            await super().beat(replica, ttl, integrations)

    world = World()
    world.store = SlowBeats(world.clock)
    keeper, _ = world.replica("a", ["i0"])
    run(keeper.round())
    world.clock.advance(keeper.interval)
    with capture_logs() as logs:
        run(keeper.round())
    assert [e for e in logs if e["event"] == "lease.renewed_late"] == []
