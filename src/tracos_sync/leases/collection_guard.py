"""One lease collection at a time serves a TracOS collection: a replica whose LEASE_COLLECTION
differs from that of replicas already serving the same TracOS collections (a mis-set setting)
serves nothing, and says so, naming both.

Leases cannot see it (each lease collection has its own leases, each replica thinks it holds
every lease); the registry of every replica does (``ReplicaRegistry``). Each round, before any
lease is taken or renewed:

- a waiting replica registers as waiting and reads the replicas of other lease collections that
  serve any of its TracOS collections: while one serves, it keeps waiting; otherwise it becomes
  a candidate, as below;
- a serving replica (or a candidate) registers as serving (since its first such registration,
  by the server's clock; a replica whose heartbeat lapsed, frozen or cut off past its TTL,
  starts over: meanwhile one of another lease collection may have begun serving) and reads
  them again: one of another lease collection that has served
  since earlier (the replica's name breaking a tie) makes it wait, giving back what it holds.

Two candidates of different lease collections each write before they read, so at least one of
them sees the other, and both order them alike: one serves, the other waits. A replica that
serves keeps serving when another of another lease collection registers later. A replica of
another lease collection that stopped counts for a TTL after its last heartbeat (its leases may
still run that long); one that gave its leases back and unregistered, not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import structlog

from tracos_sync.domain.ports import Registration, ReplicaRegistry

log = structlog.get_logger("tracos_sync.leases")


def pick_one(mine: str, others: Iterable[str]) -> str:
    """What an operator must do, said alike in the log, by ``check`` and by a run: which lease
    collections differ, and to pick the intended one. None is recommended: which one serves says
    only whose replicas came first, and a typo that came first serves as well as the right one."""
    names = ", ".join(sorted({mine, *others}))
    return (
        f"replicas serving the same TracOS collections differ in LEASE_COLLECTION ({names}): "
        "pick the one you intend and set it on every replica"
    )


class CollectionGuard:
    def __init__(self, registry: ReplicaRegistry, replica: str, ttl: float, leases: str) -> None:
        """``leases``: this replica's LEASE_COLLECTION."""
        self._registry = registry
        self._replica = replica
        self._ttl = ttl
        self._leases = leases
        self._since: datetime | None = None  # serving since (None: waiting)
        self._said: frozenset[tuple[str, str, bool]] = frozenset()
        self._others: tuple[str, ...] = ()  # the other lease collections seen last round

    @property
    def serving(self) -> bool:
        return self._since is not None

    @property
    def other_lease_collections(self) -> tuple[str, ...]:
        """Those of the replicas seen serving the same TracOS collections in the last round."""
        return self._others

    async def may_serve(self) -> bool:
        """One round: whether this replica may serve (hold leases) until the next."""
        if self._since is None:
            await self._registry.register(self._replica, self._ttl, serving=False)
            others = await self._registry.elsewhere()
            if any(other.serving_since is not None for other in others):
                self._say(others)
                return False
        since = await self._registry.register(self._replica, self._ttl, serving=True)
        others = await self._registry.elsewhere()
        earlier = [
            other
            for other in others
            if other.serving_since is not None
            and (since is None or (other.serving_since, other.replica) < (since, self._replica))
        ]
        if earlier:
            await self._registry.register(self._replica, self._ttl, serving=False)
            self._since = None
            self._say(others)
            return False
        self._since = since
        self._say(others)
        return True

    async def leave(self) -> None:
        """Once its work has stopped and its leases are given back."""
        await self._registry.unregister(self._replica)

    def _say(self, others: Sequence[Registration]) -> None:
        """Loudly, once per change: which replicas keep their leases where, who serves."""
        self._others = tuple(sorted({other.leases for other in others}))
        said = frozenset((o.replica, o.leases, o.serving_since is not None) for o in others)
        if said == self._said:
            return
        self._said = said
        if not others:
            log.info(
                "lease.collections_agree", replica=self._replica, lease_collection=self._leases
            )
            return
        elsewhere = sorted({other.leases for other in others})
        log.error(
            "lease.collection_conflict",
            replica=self._replica,
            lease_collection=self._leases,
            other_lease_collections=elsewhere,
            others=[other.replica for other in others],
            collections=sorted({c for other in others for c in other.collections}),
            this_replica="serves (the others wait)" if self._since else "waits, serving nothing",
            reason=f"this replica keeps its leases in {self._leases}, replicas serving the same "
            f"TracOS collections in {', '.join(elsewhere)}; one lease collection serves at a "
            f"time, the one whose replicas came first; {pick_one(self._leases, elsewhere)}",
        )
