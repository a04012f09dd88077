"""Prometheus metrics of watch mode, served on ``METRICS_PORT``."""

from __future__ import annotations

from typing import Any

import structlog

from tracos_sync.domain.ports import CertificateExpiry
from tracos_sync.pipeline import RunStats

log = structlog.get_logger("tracos_sync.watch")


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.outcomes = Counter(
            "tracos_sync_outcomes",
            "Files and work orders handled, by outcome",
            ["integration", "outcome"],
            registry=self.registry,
        )
        self.cycle_seconds = Histogram(
            "tracos_sync_cycle_seconds",
            "Duration of one sync cycle (inbound then outbound)",
            ["integration"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.cycle_failures = Counter(
            "tracos_sync_cycle_failures",
            "Sync cycles that could not complete",
            ["integration"],
            registry=self.registry,
        )
        self.oldest_unsynced = Gauge(
            "tracos_sync_oldest_unsynced_seconds",
            "Age of the oldest TracOS work order waiting to go out (0 when none)",
            ["integration"],
            registry=self.registry,
        )
        self.inbound_waiting = Gauge(
            "tracos_sync_inbound_waiting",
            "Client inputs waiting to be taken (folder connector)",
            ["integration"],
            registry=self.registry,
        )
        self.inbound_oldest = Gauge(
            "tracos_sync_inbound_oldest_seconds",
            "Age of the oldest client input waiting (0 when none)",
            ["integration"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "tracos_sync_database_up",
            "1 when the last cycle reached MongoDB",
            ["integration"],
            registry=self.registry,
        )
        self.destination_up = Gauge(
            "tracos_sync_destination_up",
            "1 when the last cycle could write the client side (folders, API)",
            ["integration"],
            registry=self.registry,
        )
        # Not an outage: the database and the destination answer, a neighbour holds a lock.
        self.destination_locked = Gauge(
            "tracos_sync_destination_locked",
            "1 when the last cycle left work for later because a lock on the client side "
            "(the outbound folder) stayed held past LOCK_TIMEOUT_SECONDS",
            ["integration"],
            registry=self.registry,
        )
        self.inbound_all_refused = Gauge(
            "tracos_sync_inbound_all_refused",
            "1 when the last sweep that read client records refused every one of them (a "
            "mapping that does not fit the client's records; inbound.all_refused names the most "
            "common reason), 0 once a sweep accepts one",
            ["integration"],
            registry=self.registry,
        )
        self.certificate_seconds = Gauge(
            "tracos_sync_client_certificate_seconds_left",
            "Seconds until the client certificate presented to the client API expires "
            "(negative once expired); only for an integration that presents one",
            ["integration"],
            registry=self.registry,
        )
        self.certificate_expiring = Gauge(
            "tracos_sync_client_certificate_expiring",
            "1 when the client certificate presented to the client API expires within its "
            "tls.cert_warning_days (or has expired), else 0",
            ["integration"],
            registry=self.registry,
        )
        # Watch mode with LEASES: what this replica serves, and since when.
        self.lease_held = Gauge(
            "tracos_sync_lease_held",
            "1 while this replica holds the integration's lease (LEASES), 0 once lost or "
            "given back",
            ["integration", "replica"],
            registry=self.registry,
        )
        self.lease_since = Gauge(
            "tracos_sync_lease_since_seconds",
            "When this replica took the integration's lease (Unix time, MongoDB's clock)",
            ["integration", "replica"],
            registry=self.registry,
        )
        self._server: Any = None

    def serve(self, address: str, port: int) -> None:
        from prometheus_client import start_http_server

        self._server, _ = start_http_server(port, addr=address, registry=self.registry)
        log.info("watch.metrics", address=address, port=port, path="/metrics")

    def of(self, integration: str) -> IntegrationMetrics:
        """The metrics of one integration (its ``integration`` label)."""
        return IntegrationMetrics(self, integration)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()


class IntegrationMetrics:
    """One integration's series of every metric, under the names ``Metrics`` gives them."""

    def __init__(self, metrics: Metrics, integration: str) -> None:
        self._outcomes = metrics.outcomes
        self._integration = integration
        self.cycle_seconds = metrics.cycle_seconds.labels(integration)
        self.cycle_failures = metrics.cycle_failures.labels(integration)
        self.oldest_unsynced = metrics.oldest_unsynced.labels(integration)
        self.inbound_waiting = metrics.inbound_waiting.labels(integration)
        self.inbound_oldest = metrics.inbound_oldest.labels(integration)
        self.database_up = metrics.database_up.labels(integration)
        self.destination_up = metrics.destination_up.labels(integration)
        self.destination_locked = metrics.destination_locked.labels(integration)
        self.inbound_all_refused = metrics.inbound_all_refused.labels(integration)
        self._certificate_seconds = metrics.certificate_seconds
        self._certificate_expiring = metrics.certificate_expiring

    def certificate(self, expiry: CertificateExpiry) -> None:
        """The client certificate's expiry (a series only for an integration that has one)."""
        self._certificate_seconds.labels(self._integration).set(expiry.seconds_left)
        self._certificate_expiring.labels(self._integration).set(1 if expiry.expiring else 0)

    def observe(self, stats: RunStats) -> None:
        for outcome, count in stats.counts().items():
            if count:
                self._outcomes.labels(self._integration, outcome).inc(count)
        self.cycle_seconds.observe(stats.seconds)
        self.destination_locked.set(1 if stats.deferred else 0)
        if stats.records_read():  # a sweep that read nothing leaves it as it was
            self.inbound_all_refused.set(1 if stats.all_refused() else 0)
