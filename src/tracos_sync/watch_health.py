"""What the last sweep of an integration found, logged once per change of state and counted in
its metrics: the database, the client side (folders, API), the sweep as a whole."""

from __future__ import annotations

import structlog

from tracos_sync.domain.errors import DatabaseUnavailable, DestinationUnwritable
from tracos_sync.domain.fence import LeaseLost
from tracos_sync.failures import describe_error
from tracos_sync.watch_metrics import IntegrationMetrics

log = structlog.get_logger("tracos_sync.watch")


class WatchHealth:
    """What the last sweep found, per part: the database, the client side (folders, API), the
    sweep as a whole. Logged only when a part changes state, counted in metrics always."""

    def __init__(self, metrics: IntegrationMetrics | None) -> None:
        self._metrics = metrics
        self._state: dict[str, str] = {}

    def _set(self, part: str, state: str, error: str = "") -> None:
        if self._state.get(part) == state:
            return
        previous = self._state.get(part)
        self._state[part] = state
        if state == "ok":
            if previous is not None:
                log.info(f"watch.{part}", state="available")
        else:
            log.error(f"watch.{part}", state=state, error=error)

    def succeeded(self) -> None:
        for part in ("database", "destination", "sweep"):
            self._set(part, "ok")
        if self._metrics is not None:
            self._metrics.database_up.set(1)
            self._metrics.destination_up.set(1)

    def failed(self, exc: BaseException, *, counted: bool = True) -> None:
        """Classified by what failed, not by where: a full disk is not a database outage.
        ``counted`` False: another failure of a sweep already counted (its other direction)."""
        if isinstance(exc, LeaseLost):
            return  # the lease keeper says so, once (``lease.lost``)
        error = describe_error(exc)
        if self._metrics is not None and counted:
            self._metrics.cycle_failures.inc()
        if isinstance(exc, DatabaseUnavailable):
            self._set("database", "unavailable, retrying", error)
            if self._metrics is not None:
                self._metrics.database_up.set(0)
        elif isinstance(exc, DestinationUnwritable):
            # The sweep got as far as the client side: the database answered.
            self._set("database", "ok")
            self._set("destination", "unwritable, retrying", error)
            if self._metrics is not None:
                self._metrics.database_up.set(1)
                self._metrics.destination_up.set(0)
        else:
            self._set("sweep", "failing, retrying", error)
