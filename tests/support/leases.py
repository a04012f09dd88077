"""An in-memory ``LeaseStore`` on a fake clock, held to the same contract as the MongoDB one
(tests/contract/test_lease_store_contract.py), the clock it shares with the keepers, and an
in-memory registry of replicas (``ReplicaRegistry``) shared by several lease collections."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tracos_sync.domain.fence import Fence
from tracos_sync.domain.ports import Lease, LeaseRecord, Registration, ReplicaRecord

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeClock:
    """Seconds since ``EPOCH``: the store's clock and every keeper's monotonic clock at once."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def instant(self, seconds: float | None = None) -> datetime:
        return EPOCH + timedelta(seconds=self.now if seconds is None else seconds)


@dataclass
class _Stored:
    holder: str | None
    epoch: int
    since: float
    expires: float


@dataclass
class InMemoryLeaseStore:
    clock: FakeClock = field(default_factory=FakeClock)
    stored: dict[str, _Stored] = field(default_factory=dict)
    beats: dict[str, float] = field(default_factory=dict)
    described: dict[str, ReplicaRecord] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    # Raised by every call while set: the store unreachable.
    failing: Exception | None = None

    def _reach(self) -> None:
        if self.failing is not None:
            raise self.failing

    def _lease(self, name: str) -> Lease:
        s = self.stored[name]
        assert s.holder is not None
        return Lease(
            name, s.holder, s.epoch, self.clock.instant(s.expires), self.clock.instant(s.since)
        )

    async def take(self, name: str, holder: str, ttl: float) -> Lease | None:
        self._reach()
        now = self.clock.now
        s = self.stored.get(name)
        if s is not None and s.holder not in (None, holder) and s.expires > now:
            return None
        epoch = (s.epoch if s is not None else 0) + 1
        self.stored[name] = _Stored(holder, epoch, now, now + ttl)
        return self._lease(name)

    async def renew(self, leases: Sequence[Lease], ttl: float) -> list[Lease | None]:
        self._reach()
        return [self._renew_one(lease, ttl) for lease in leases]

    def _renew_one(self, lease: Lease, ttl: float) -> Lease | None:
        now = self.clock.now
        s = self.stored.get(lease.name)
        if s is None or s.holder != lease.holder or s.epoch != lease.epoch or s.expires <= now:
            return None
        s.expires = now + ttl
        return self._lease(lease.name)

    async def give_back(self, lease: Lease) -> bool:
        self._reach()
        s = self.stored.get(lease.name)
        if s is None or s.holder != lease.holder or s.epoch != lease.epoch:
            return False
        s.holder = None
        s.expires = self.clock.now
        return True

    async def beat(self, replica: str, ttl: float, integrations: Sequence[str]) -> None:
        self._reach()
        self.beats[replica] = self.clock.now + ttl
        self.described[replica] = ReplicaRecord(replica, tuple(sorted(integrations)), ttl)
        self.started.setdefault(replica, self.clock.now)

    async def leave(self, replica: str) -> None:
        self._reach()
        self.beats.pop(replica, None)
        self.started.pop(replica, None)

    async def replicas(self) -> list[ReplicaRecord]:
        self._reach()
        now = self.clock.now
        return [
            dataclasses.replace(self.described[name], up=now - self.started[name])
            for name, expires in sorted(self.beats.items())
            if expires > now
        ]

    async def leases(self) -> list[LeaseRecord]:
        self._reach()
        now = self.clock.now
        return [
            LeaseRecord(
                name,
                s.holder,
                s.epoch,
                self.clock.instant(s.since),
                self.clock.instant(s.expires),
                s.holder is not None and s.expires > now,
            )
            for name, s in sorted(self.stored.items())
        ]

    def holder_now(self, name: str) -> tuple[str, int] | None:
        """Who holds ``name`` by the store's clock, with the epoch."""
        s = self.stored.get(name)
        if s is None or s.holder is None or s.expires <= self.clock.now:
            return None
        return s.holder, s.epoch


@dataclass
class RecordingWork:
    """The work the keeper starts and stops, and what the store said when it was stopped."""

    store: InMemoryLeaseStore
    serving: dict[str, Fence] = field(default_factory=dict)
    stopped_while_held: list[bool] = field(default_factory=list)

    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, name: str, fence: Fence) -> None:
        assert name not in self.serving
        self.serving[name] = fence
        self.changed.set()

    async def all_started(self, count: int) -> None:
        while len(self.serving) < count:
            self.changed.clear()
            await self.changed.wait()

    async def stop(self, name: str) -> bool:
        fence = self.serving.pop(name)
        # Lost: closed before the work is stopped; given back: still held while it stops.
        assert not fence.writable() or self.store.holder_now(name) is not None
        held = self.store.holder_now(name) == (fence.lease.holder, fence.epoch)
        self.stopped_while_held.append(held)
        return True


@dataclass
class _Registered:
    leases: str
    collections: frozenset[str]
    ttl: float
    expires: float
    since: float | None


@dataclass
class Registry:
    """Every replica of one database, whatever its lease collection."""

    clock: FakeClock
    entries: dict[str, _Registered] = field(default_factory=dict)

    def of(self, leases: str, collections: Sequence[str]) -> InMemoryReplicaRegistry:
        """The registry as a replica of ``leases`` serving ``collections`` sees it."""
        return InMemoryReplicaRegistry(self, leases, frozenset(collections))


@dataclass
class InMemoryReplicaRegistry:
    shared: Registry
    leases: str
    collections: frozenset[str]
    # Awaited between calls: lets replicas' rounds interleave under asyncio.gather.
    pause: bool = False

    async def _step(self) -> None:
        if self.pause:
            await asyncio.sleep(0)

    async def register(self, replica: str, ttl: float, *, serving: bool) -> datetime | None:
        await self._step()
        clock = self.shared.clock
        before = self.shared.entries.get(replica)
        since = None
        if serving:
            since = clock.now  # a heartbeat that lapsed starts over, as the MongoDB one
            if before is not None and before.since is not None and before.expires > clock.now:
                since = before.since
        self.shared.entries[replica] = _Registered(
            self.leases, self.collections, ttl, clock.now + ttl, since
        )
        return None if since is None else clock.instant(since)

    async def elsewhere(self) -> list[Registration]:
        await self._step()
        now = self.shared.clock.now
        return [
            Registration(
                name,
                e.leases,
                tuple(sorted(e.collections & self.collections)),
                None if e.since is None else self.shared.clock.instant(e.since),
            )
            for name, e in sorted(self.shared.entries.items())
            if e.leases != self.leases
            and e.collections & self.collections
            and (e.expires > now or (e.since is not None and e.expires + e.ttl > now))
        ]

    async def unregister(self, replica: str) -> None:
        await self._step()
        self.shared.entries.pop(replica, None)
