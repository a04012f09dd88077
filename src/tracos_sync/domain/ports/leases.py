"""Leases on integrations, shared by replicas (``LeaseStore``), and what it answers.

A lease says which replica serves an integration, until when. It is the pattern of Kubernetes'
Lease objects and Spring Integration's MongoDB lock registry: one document per integration, taken
and renewed by conditional updates. ``epoch`` counts the holders an integration has had: it grows
by one at every take-over, never at a renewal, so a write stamped with an older epoch is known to
come from a replica that lost its lease (the fence).

Expiry is judged by the store's clock (TracOS's MongoDB), one clock for every replica: a replica
whose host clock is skewed can neither take a lease early nor keep one late. The holder itself
keeps a local deadline on its monotonic clock (see ``tracos_sync.leases.keeper``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as its holder took or renewed it. ``expires_at`` and ``since`` are the store's
    clock; ``since``: when this holder took it (this epoch began)."""

    name: str
    holder: str
    epoch: int
    expires_at: datetime
    since: datetime


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A lease as the store holds it, for ``check`` and metrics. ``holder`` None: given back
    (or never taken); ``live`` False: expired by the store's clock."""

    name: str
    holder: str | None
    epoch: int
    since: datetime | None
    expires_at: datetime | None
    live: bool


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    """A live replica as its last heartbeat describes it: the integrations its file lists and
    its ``LEASE_SECONDS`` (replicas that disagree on either leave integrations unserved or
    stretch failover)."""

    name: str
    integrations: tuple[str, ...]
    ttl: float
    # How long it has been live (store's clock), seconds.
    up: float = 0.0

    @property
    def view(self) -> str:
        """A short digest of what this replica serves from and with: equal for replicas that
        agree."""
        return fleet_view(self.integrations, self.ttl)


def fleet_view(integrations: Sequence[str], ttl: float) -> str:
    """A digest of an integrations list (in any order) and a TTL, for logs and ``check``."""
    text = "\n".join([*sorted(integrations), f"ttl={ttl:g}"])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class LeaseStore(Protocol):
    """Leases and replica heartbeats in one shared store."""

    async def take(self, name: str, holder: str, ttl: float) -> Lease | None:
        """The lease of ``name`` for ``holder`` with the next epoch, when nobody holds it or its
        holder's lease expired; None when someone else holds it."""
        ...

    async def renew(self, leases: Sequence[Lease], ttl: float) -> list[Lease | None]:
        """Each lease, in order: the same lease (same epoch) expiring ``ttl`` seconds from the
        store's now, when it is still its holder's and not expired; None when it was lost. All
        at once (one write for the lot, whatever their number): a replica holding hundreds of
        leases renews them in one round trip, not hundreds."""
        ...

    async def give_back(self, lease: Lease) -> bool:
        """Free the lease at once (its epoch is kept, the next taker's is one more); False when
        it was not this holder's any more."""
        ...

    async def beat(self, replica: str, ttl: float, integrations: Sequence[str]) -> None:
        """This replica is alive for ``ttl`` seconds more (store's clock), and knows
        ``integrations``."""
        ...

    async def leave(self, replica: str) -> None:
        """This replica stops: it no longer counts as live."""
        ...

    async def replicas(self) -> list[ReplicaRecord]:
        """The replicas whose heartbeat has not expired, by name, as they described
        themselves."""
        ...

    async def leases(self) -> list[LeaseRecord]:
        """Every lease the store holds, live or not, by name."""
        ...


@dataclass(frozen=True, slots=True)
class Registration:
    """A replica that keeps its leases in another lease collection and serves some of the same
    TracOS collections, as the registry of every replica says (``ReplicaRegistry``)."""

    replica: str
    # Its LEASE_COLLECTION.
    leases: str
    # The TracOS collections ("database.collection") it serves that this replica serves too.
    collections: tuple[str, ...]
    # Since when it serves them (store's clock); None: it waits, serving nothing.
    serving_since: datetime | None


class ReplicaRegistry(Protocol):
    """Every replica of a database, whatever its lease collection: leases cannot see a replica
    that keeps its leases in another collection (a mis-set LEASE_COLLECTION), so each one also
    says here which lease collection it uses and which TracOS collections it serves."""

    async def register(self, replica: str, ttl: float, *, serving: bool) -> datetime | None:
        """This replica is alive for ``ttl`` seconds more; ``serving`` or waiting. Returns since
        when it serves (kept from its first registration as serving; None: waiting)."""
        ...

    async def elsewhere(self) -> list[Registration]:
        """The replicas of other lease collections serving any TracOS collection this one
        serves: live, or serving until a TTL ago (their leases may still be running)."""
        ...

    async def unregister(self, replica: str) -> None:
        """This replica stops (after its work has stopped and its leases are given back)."""
        ...
