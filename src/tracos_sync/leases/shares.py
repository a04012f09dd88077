"""How many leases one replica should hold, from what the store says of the live replicas and
the leases: decided by each replica alone, the same way, so that the fleet settles without
messages.

Integrations are shared out among the live replicas that know them (whose integrations file
lists them): those known to the same replicas form a *group* (one group, every live replica,
when all files agree; during a rolling update of the file, the integrations only the updated
replicas list form a second group, shared among those alone). In each group:

- a replica holds at most ``ceil(n / k)`` of the group's ``n`` integrations, ``k`` the replicas
  knowing them (the ceiling), and one above ``floor(n / k)`` gives one back per round while
  another of those ``k`` holds fewer than the floor, which takes it (a replica at the floor or
  above takes beyond the floor only while nobody of the group is below it). Balanced, nothing
  moves;
- a replica that does not know an integration neither takes it nor counts in its share, so the
  ceilings of those that know it add up to at least ``n``: nothing goes unserved while one of
  them is live.

Each replica is in every group of the integrations it knows, so its load is its share of each
(within one integration of the others' per group).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tracos_sync.domain.ports import LeaseRecord, ReplicaRecord


@dataclass(frozen=True, slots=True)
class Group:
    """Integrations known to the same live replicas, shared out among those alone."""

    replicas: frozenset[str]
    names: frozenset[str]
    ceiling: int
    floor: int
    # Another replica of the group holds fewer of its integrations than the floor.
    someone_below_floor: bool

    def limit(self) -> int:
        return self.floor if self.someone_below_floor else self.ceiling


@dataclass(frozen=True, slots=True)
class Plan:
    """One round's shares for one replica: ``groups`` by integration name."""

    live: int
    groups: dict[str, Group]
    # The live replicas as the store listed them (``live`` may count more, after an outage).
    listed: int = 1

    @property
    def everyone(self) -> Group | None:
        """The group known to every live replica (what a fleet whose files agree has alone)."""
        return next((g for g in self.groups.values() if len(g.replicas) >= self.listed), None)

    @property
    def ceiling(self) -> int:
        return self.everyone.ceiling if self.everyone else 0

    @property
    def floor(self) -> int:
        return self.everyone.floor if self.everyone else 0

    @property
    def shared(self) -> frozenset[str]:
        """The integrations every live replica knows."""
        return self.everyone.names if self.everyone else frozenset()

    def to_give_back(self, held: Collection[str]) -> list[str]:
        """The integrations to give back this round, of those ``held``."""
        given: list[str] = []
        for group in set(self.groups.values()):
            mine = sorted((name for name in held if name in group.names), reverse=True)
            extra = len(mine) - group.ceiling
            if extra <= 0 and len(mine) > group.floor and group.someone_below_floor:
                extra = 1
            given += mine[: max(0, extra)]
        return sorted(given)

    def may_take(self, name: str, held: Collection[str]) -> bool:
        """Whether ``name`` (free) may be taken on top of ``held``."""
        group = self.groups.get(name)
        if group is None:  # not one this replica knows
            return False
        mine = sum(1 for other in held if other in group.names)
        return mine < group.limit()


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
    knowers: dict[str, frozenset[str]] = {
        name: frozenset(
            [me] + [r.name for r in others if not r.integrations or name in r.integrations]
        )
        for name in names
    }
    members: dict[frozenset[str], set[str]] = {}
    for name, who in knowers.items():
        members.setdefault(who, set()).add(name)
    holders = {record.name: record.holder for record in leases if record.live}
    groups: dict[str, Group] = {}
    for who, group_names in members.items():
        # Known to every live replica: the replicas seen before an outage count until back.
        count = max(at_least, len(who)) if len(who) == len(others) + 1 else len(who)
        ceiling = math.ceil(len(group_names) / count)
        floor = len(group_names) // count
        counts = Counter(holders.get(name) for name in group_names)
        below = any(counts[replica] < floor for replica in who if replica != me)
        group = Group(who, frozenset(group_names), ceiling, floor, below)
        groups.update(dict.fromkeys(group_names, group))
    return Plan(live, groups, len(others) + 1)
