"""What ``tracos-sync check`` reports: the configuration, then each integration's database and
client side, each with ok or not."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import structlog

from tracos_sync.app.database import Database, open_database
from tracos_sync.app.integration import Integration
from tracos_sync.app.runtime import Runtime
from tracos_sync.connectors.client_erp.trial import sample_checks
from tracos_sync.domain.errors import SyncError
from tracos_sync.domain.ports import ConnectorContext, HealthCheck, Registration, ReplicaRecord
from tracos_sync.leases.collection_guard import pick_one


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
    """Which replica serves which integration, since when (LEASES). A lease free or expired is
    taken by a replica within its next round: a FAIL only once replicas have been live for
    longer than twice their TTL and still nobody took it. Live replicas whose integrations
    files or LEASE_SECONDS differ are a FAIL, and so are replicas of another LEASE_COLLECTION
    serving the same TracOS collections."""
    settings = runtime.settings
    store = database.lease_store(
        settings.mongo_database, settings.lease_collection, settings.lease_seconds
    )
    registry = database.replica_registry(
        settings.mongo_database,
        settings.lease_collection,
        settings.lease_seconds,
        runtime.integrations,
    )
    try:
        records = {record.name: record for record in await store.leases()}
        replicas = await store.replicas()
        elsewhere = await registry.elsewhere()
    except SyncError as exc:
        return [HealthCheck("leases", False, f"unreadable: {exc}")]
    checks = [_replicas(replicas), _lease_collections(settings.lease_collection, elsewhere)]
    ttl = max([settings.lease_seconds, *(replica.ttl for replica in replicas)])
    settled = any(replica.up > 2 * ttl for replica in replicas)
    # Replicas of another lease collection serve: no replica of this one takes a lease here.
    aside = sorted({o.leases for o in elsewhere if o.serving_since is not None})
    for integration in runtime.integrations:
        record = records.get(integration.name)
        label = f"{integration.name}: lease" if runtime.named else "lease"
        ok = True
        if record is not None and record.live and record.since is not None:
            since = record.since.isoformat(timespec="seconds")
            detail = f"held by {record.holder} since {since} (epoch {record.epoch})"
        else:
            if record is None:
                detail = "never taken yet"
            else:
                last = f", last held by {record.holder}" if record.holder else ""
                detail = f"free (epoch {record.epoch}{last})"
            if aside:
                ok = False
                detail += (
                    f": no replica of {settings.lease_collection} takes it while replicas of "
                    f"{', '.join(aside)} serve these TracOS collections (see lease collection)"
                )
            elif settled:
                ok = False
                detail += (
                    f", while replicas have been live for over twice LEASE_SECONDS ({ttl:g} s): "
                    "no replica takes it (is it in every replica's integrations file?)"
                )
            else:
                detail += ": the next replica's round takes it"
        checks.append(HealthCheck(label, ok, detail))
    return checks


def _lease_collections(mine: str, elsewhere: Sequence[Registration]) -> HealthCheck:
    """A FAIL while replicas of another LEASE_COLLECTION serve (or wait to serve) the same
    TracOS collections: one of the two lease collections serves them, the other's replicas
    wait, and which one is a matter of who came first."""
    if not elsewhere:
        return HealthCheck("lease collection", True, f"{mine}, as every replica's")
    described = "; ".join(
        f"{o.replica} (LEASE_COLLECTION={o.leases}, "
        f"{'serving' if o.serving_since is not None else 'waiting'}): "
        f"{', '.join(o.collections)}"
        for o in elsewhere
    )
    return HealthCheck(
        "lease collection",
        False,
        f"{mine} here, but replicas of another lease collection are set to serve the same TracOS "
        f"collections: {described}; {pick_one(mine, (o.leases for o in elsewhere))}",
    )


def _replicas(replicas: Sequence[ReplicaRecord]) -> HealthCheck:
    """How many replicas are live; a FAIL when they disagree on their integrations or TTL."""
    live = f"{len(replicas)} live (heartbeat within LEASE_SECONDS)"
    views: dict[str, list[ReplicaRecord]] = {}
    for replica in replicas:
        if replica.integrations:  # an older version says nothing of them
            views.setdefault(replica.view, []).append(replica)
    if len(views) <= 1:
        return HealthCheck("replicas", True, live)
    described = "; ".join(
        f"{', '.join(r.name for r in group)}: {len(group[0].integrations)} integrations, "
        f"LEASE_SECONDS={group[0].ttl:g} (view {view})"
        for view, group in sorted(views.items())
    )
    return HealthCheck(
        "replicas",
        False,
        f"{live}, but they disagree: {described}; give every replica the same integrations "
        "file and LEASE_SECONDS",
    )
