"""How many leases one replica should hold, from what the store says of the live replicas and
the leases: decided by each replica alone, the same way, so that the fleet settles without
messages.

- The integrations every live replica knows are shared out: at most ``ceil(n / live)`` each
  (the ceiling), and a replica above ``floor(n / live)`` gives one back per round while another
  live replica holds fewer than the floor, which takes it (a replica at the floor or above takes
  beyond the floor only while nobody is below it). Balanced, nothing moves.
- An integration some live replica does not know (integrations files that differ) is taken by a
  replica that knows it whenever it is free, beyond any share, and never given back for
  fairness: otherwise the replicas that know it could all be at their share while it goes
  unserved.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tracos_sync.domain.ports import LeaseRecord, ReplicaRecord


@dataclass(frozen=True, slots=True)
class Plan:
    """One round's shares for one replica."""

    live: int
    ceiling: int
    floor: int
    # Known to every live replica: shared out; the others are taken by whoever knows them.
    shared: frozenset[str]
    # Another live replica holds fewer of the shared integrations than the floor.
    someone_below_floor: bool

    def to_give_back(self, held: Collection[str]) -> list[str]:
        """The shared integrations to give back this round, of those ``held``."""
        mine = sorted((name for name in held if name in self.shared), reverse=True)
        extra = len(mine) - self.ceiling
        if extra <= 0 and len(mine) > self.floor and self.someone_below_floor:
            extra = 1
        return mine[: max(0, extra)]

    def may_take(self, name: str, held: Collection[str]) -> bool:
        """Whether ``name`` (free) may be taken on top of ``held``."""
        if name not in self.shared:
            return True
        mine = sum(1 for other in held if other in self.shared)
        limit = self.floor if self.someone_below_floor else self.ceiling
        return mine < limit


def plan(
    me: str,
    names: Sequence[str],
    replicas: Sequence[ReplicaRecord],
    leases: Sequence[LeaseRecord],
    *,
    at_least: int = 1,
) -> Plan:
    """``me``'s plan: ``names``, the integrations it knows; ``replicas``, the live ones (``me``
    among them once it beat); ``leases``, every lease; ``at_least``: live replicas to count
    whatever the store says (after an outage, those seen before it, until they are back)."""
    others = [replica for replica in replicas if replica.name != me]
    live = max(at_least, len(others) + 1)
    # A heartbeat without a list (a replica of an older version) is taken to know them all.
    shared = frozenset(
        name
        for name in names
        if all(not replica.integrations or name in replica.integrations for replica in others)
    )
    ceiling = math.ceil(len(shared) / live)
    floor = len(shared) // live
    counts = Counter(record.holder for record in leases if record.live and record.name in shared)
    below = any(counts[replica.name] < floor for replica in others)
    return Plan(live, ceiling, floor, shared, below)
