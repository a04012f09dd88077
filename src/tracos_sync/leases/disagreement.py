"""Replicas that do not agree on what they serve: said loudly, once per change."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from tracos_sync.domain.ports import ReplicaRecord, fleet_view

log = structlog.get_logger("tracos_sync.leases")


class Disagreement:
    """Live replicas whose integrations files or LEASE_SECONDS differ (an integration some do
    not know, a failover stretched by the longest TTL), as one replica sees them."""

    def __init__(self, replica: str, names: Sequence[str], ttl: float) -> None:
        self._replica = replica
        self._mine = fleet_view(names, ttl)
        self._said: frozenset[tuple[str, str]] | None = None

    def see(self, replicas: Sequence[ReplicaRecord]) -> None:
        """Logs a warning when the live replicas disagree, and again when that changes."""
        views = {replica.name: replica.view for replica in replicas if replica.integrations}
        disagreement = frozenset(views.items()) if len(set(views.values())) > 1 else None
        if disagreement is not None and disagreement != self._said:
            log.warning(
                "lease.replicas_disagree",
                replica=self._replica,
                view=self._mine,
                others={name: view for name, view in views.items() if view != self._mine},
                reason="live replicas have different integrations files or LEASE_SECONDS: "
                "give every replica the same (integrations only some know are shared among "
                "those alone)",
            )
        self._said = disagreement
