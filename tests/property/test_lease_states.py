"""The lease state machine under any interleaving of rounds, frozen replicas (a replica that
simply does not go round), time passing, replicas joining and leaving, and the store out of
reach: never two replicas writing for one integration, epochs only growing; and once everyone
goes round again, every integration served by exactly one replica, each replica's share between
the floor and the ceiling of integrations / replicas, and nothing moving once balanced."""

from __future__ import annotations

import asyncio
import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.leases import FakeClock, InMemoryLeaseStore, RecordingWork
from tracos_sync.domain.errors import DatabaseUnavailable
from tracos_sync.leases.keeper import LeaseKeeper

TTL = 9.0
NAMES = [f"i{n}" for n in range(7)]
MAX_REPLICAS = 4


class Replicas(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.store = InMemoryLeaseStore(self.clock)
        self.keepers: list[tuple[LeaseKeeper, RecordingWork]] = []
        self.epochs: dict[str, int] = {}
        self.joined = 0

    @precondition(lambda self: len(self.keepers) < MAX_REPLICAS)
    @rule()
    def join(self) -> None:
        work = RecordingWork(self.store)
        keeper = LeaseKeeper(self.store, NAMES, f"r{self.joined}", TTL, work=work, clock=self.clock)
        self.joined += 1
        self.keepers.append((keeper, work))

    @precondition(lambda self: self.keepers)
    @rule(data=st.data())
    def go_round(self, data: st.DataObject) -> None:
        keeper, _ = data.draw(st.sampled_from(self.keepers))
        asyncio.run(keeper.round())

    @precondition(lambda self: self.keepers)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.keepers) - 1))
        keeper, _ = self.keepers.pop(index)
        asyncio.run(keeper.leave())

    @rule(seconds=st.floats(0, TTL * 1.5))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(away=st.booleans())
    def store_reach(self, away: bool) -> None:
        self.store.failing = DatabaseUnavailable("away") if away else None

    @precondition(lambda self: self.keepers)
    @rule()
    def everyone_goes_round(self) -> None:
        """Long enough for any lease of a replica gone to expire and be taken over."""
        self.store.failing = None
        for _ in range(2 * 3 + 2):
            self.clock.advance(TTL / 3)
            for keeper, _ in self.keepers:
                asyncio.run(keeper.round())
            self.check_safety()
        share = math.ceil(len(NAMES) / len(self.keepers))
        floor = len(NAMES) // len(self.keepers)
        for name in NAMES:
            holders = [k.replica for k, _ in self.keepers if name in k.fences]
            assert len(holders) == 1, f"{name} served by {holders}"
        for keeper, _ in self.keepers:
            assert floor <= len(keeper.fences) <= share
        # Balanced: another round moves nothing.
        before = {k.replica: set(k.fences) for k, _ in self.keepers}
        self.clock.advance(TTL / 3)
        for keeper, _ in self.keepers:
            asyncio.run(keeper.round())
        assert {k.replica: set(k.fences) for k, _ in self.keepers} == before

    @invariant()
    def check_safety(self) -> None:
        for name in NAMES:
            writers = [
                (k.replica, k.fences[name].epoch)
                for k, _ in self.keepers
                if name in k.fences and k.fences[name].writable()
            ]
            assert len(writers) <= 1, f"{name}: {writers} may all write"
            if writers:
                assert self.store.holder_now(name) == writers[0]
            stored = self.store.stored.get(name)
            if stored is not None:
                assert stored.epoch >= self.epochs.get(name, 0)
                self.epochs[name] = stored.epoch
        for keeper, work in self.keepers:
            assert set(work.serving) == set(keeper.fences)


Replicas.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestReplicas = Replicas.TestCase
