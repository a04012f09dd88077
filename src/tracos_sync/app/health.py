"""What ``tracos-sync check`` reports: the configuration, then each integration's database and
client side, each with ok or not."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import structlog

from tracos_sync.app.database import Database, open_database
from tracos_sync.app.integration import Integration
from tracos_sync.app.runtime import Runtime
from tracos_sync.connectors.client_erp.trial import sample_checks
from tracos_sync.domain.errors import SyncError
from tracos_sync.domain.ports import ConnectorContext, HealthCheck


async def check(runtime: Runtime) -> list[HealthCheck]:
    """Everything ``tracos-sync check`` reports, each with ok or not; with an integrations file
    each integration's lines start with its name."""
    checks = [HealthCheck("configuration", True, "valid")]

    async def one(database: Database, integration: Integration) -> list[HealthCheck]:
        if runtime.named:  # this task's own context: its log lines only
            structlog.contextvars.bind_contextvars(integration=integration.name)
        stores = database.stores(integration)
        found = await stores.repository.health()
        context = ConnectorContext(
            stores.state,
            dry_run=True,
            lock_timeout_seconds=runtime.settings.lock_timeout_seconds,
            clock_skew_seconds=runtime.settings.client_clock_skew_seconds,
        )
        found += await integration.connector.health(context)
        if integration.samples is not None:
            found += await asyncio.to_thread(sample_checks, integration.samples)
        if runtime.named:
            found = [replace(c, name=f"{integration.name}: {c.name}") for c in found]
        return found

    async with open_database(runtime, dry_run=True, retry_seconds=0, knock=False) as database:
        # All at once: a database that does not answer costs one timeout, not one each.
        for found in await asyncio.gather(*(one(database, i) for i in runtime.integrations)):
            checks += found
        if runtime.settings.leases:
            checks += await _leases(runtime, database)
    return checks


async def _leases(runtime: Runtime, database: Database) -> list[HealthCheck]:
    """Which replica serves which integration, since when (LEASES). Information: a lease free
    or expired is taken by a replica within its next round."""
    settings = runtime.settings
    store = database.lease_store(
        settings.mongo_database, settings.lease_collection, settings.lease_seconds
    )
    try:
        records = {record.name: record for record in await store.leases()}
        live = await store.live_replicas()
    except SyncError as exc:
        return [HealthCheck("leases", False, f"unreadable: {exc}")]
    checks = [HealthCheck("replicas", True, f"{live} live (heartbeat within LEASE_SECONDS)")]
    for integration in runtime.integrations:
        record = records.get(integration.name)
        label = f"{integration.name}: lease" if runtime.named else "lease"
        if record is None:
            detail = "never taken yet"
        elif record.live and record.since is not None:
            since = record.since.isoformat(timespec="seconds")
            detail = f"held by {record.holder} since {since} (epoch {record.epoch})"
        else:
            last = f", last held by {record.holder}" if record.holder else ""
            detail = f"free (epoch {record.epoch}{last}): the next replica's round takes it"
        checks.append(HealthCheck(label, True, detail))
    return checks
