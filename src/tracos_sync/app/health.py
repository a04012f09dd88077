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
from tracos_sync.domain.ports import (
    ConnectorContext,
    HealthCheck,
    LeaseRecord,
    Registration,
    ReplicaRecord,
)
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
    serving the same TracOS collections, and no replica live once leases were taken (nothing
    is served). A held lease has a line of its own; more than ``FEW`` free ones (all in the
    same state) share one."""
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
        every = await store.leases()
        replicas = await store.replicas()
        elsewhere = await registry.elsewhere()
    except SyncError as exc:
        return [HealthCheck("leases", False, f"unreadable: {exc}")]
    records = {record.name: record for record in every}
    checks = [
        _replicas(replicas, every),
        _lease_collections(settings.lease_collection, elsewhere),
    ]
    ttl = max([settings.lease_seconds, *(replica.ttl for replica in replicas)])
    settled = any(replica.up > 2 * ttl for replica in replicas)
    # Replicas of another lease collection serve: no replica of this one takes a lease here.
    aside = sorted({o.leases for o in elsewhere if o.serving_since is not None})
    free: list[tuple[str, LeaseRecord | None]] = []
    for integration in runtime.integrations:
        record = records.get(integration.name)
        label = f"{integration.name}: lease" if runtime.named else "lease"
        if record is not None and record.live and record.since is not None:
            since = record.since.isoformat(timespec="seconds")
            detail = f"held by {record.holder} since {since} (epoch {record.epoch})"
            checks.append(HealthCheck(label, True, detail))
        else:
            free.append((label, record))
    many = len(free) > FEW
    it = "them" if many else "it"
    if aside:
        ok = False
        why = (
            f": no replica of {settings.lease_collection} takes {it} while replicas of "
            f"{', '.join(aside)} serve these TracOS collections (see lease collection)"
        )
    elif settled:
        ok = False
        why = (
            f", while replicas have been live for over twice LEASE_SECONDS ({ttl:g} s): no "
            f"replica takes {it} ({'are they' if many else 'is it'} in every replica's "
            "integrations file?)"
        )
    else:
        ok, why = True, f": the next replica's round takes {it}"
    if many:
        detail = f"{_free_many([record for _, record in free])}{why}; one: check --only NAME"
        checks.append(HealthCheck("leases", ok, detail))
    else:
        checks += [HealthCheck(label, ok, _free(record) + why) for label, record in free]
    return checks


# More free leases than this share one line of ``check``: 200 lines would hide the others.
FEW = 5


def _free(record: LeaseRecord | None) -> str:
    if record is None:
        return "never taken yet"
    last = f", last held by {record.holder}" if record.holder else ""
    return f"free (epoch {record.epoch}{last})"


def _free_many(records: Sequence[LeaseRecord | None]) -> str:
    """``200 integrations free (150 expired, last held by r1, r2; 50 never taken yet)``."""
    expired = [r for r in records if r is not None and r.holder]
    holders = sorted({r.holder for r in expired if r.holder})
    given = sum(1 for r in records if r is not None and not r.holder)
    never = sum(1 for r in records if r is None)
    parts = [
        *([f"{len(expired)} expired, last held by {_few(holders)}"] if expired else []),
        *([f"{given} given back"] if given else []),
        *([f"{never} never taken yet"] if never else []),
    ]
    return f"{len(records)} integrations free ({'; '.join(parts)})"


def _count(things: Sequence[object], noun: str) -> str:
    return f"{len(things)} {noun}{'' if len(things) == 1 else 's'}"


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(names[:FEW])
    return shown if len(names) <= FEW else f"{shown} and {len(names) - FEW} more"


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


def _replicas(replicas: Sequence[ReplicaRecord], leases: Sequence[LeaseRecord]) -> HealthCheck:
    """How many replicas are live; a FAIL when they disagree on their integrations or TTL, or
    when none is live once leases were taken (nothing is served); a WARN when none is live
    and none ever took a lease (``check`` before a first deployment's replicas start)."""
    live = f"{len(replicas)} live (heartbeat within LEASE_SECONDS)"
    if not replicas:
        return _none_live(live, leases)
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


def _none_live(live: str, leases: Sequence[LeaseRecord]) -> HealthCheck:
    """No replica live: which case it is, told by what the leases kept. Expired under a
    holder: its replicas stopped renewing without giving them back (died or froze); all given
    back: they stopped; none ever taken: no replica has started yet."""
    # A lease expired but still naming its holder was never given back.
    lapsed = [lease for lease in leases if lease.holder and not lease.live]
    if lapsed:
        holders = sorted({lease.holder for lease in lapsed if lease.holder})
        ended = max((lease.expires_at for lease in lapsed if lease.expires_at), default=None)
        until = f" until {ended.isoformat(timespec='seconds')}" if ended else ""
        return HealthCheck(
            "replicas",
            False,
            f"{live}: nothing is served; {_count(lapsed, 'lease')} expired{until} without being "
            f"given back by {_few(holders)}: they died or froze (look at them), or start a "
            "replica",
        )
    held = [lease for lease in leases if lease.live]
    if held:  # one-shot runs: they serve what they hold until they end
        holders = sorted({lease.holder for lease in held if lease.holder})
        return HealthCheck(
            "replicas",
            False,
            f"{live}: no replica serves; {_count(held, 'lease')} held by {_few(holders)} (one-shot "
            "runs: until they end), the others are not served: start a replica",
        )
    if any(lease.epoch > 0 for lease in leases):
        return HealthCheck(
            "replicas",
            False,
            f"{live}: nothing is served; every lease was given back (the replicas stopped): "
            "start a replica",
        )
    return HealthCheck(
        "replicas",
        True,
        f"{live}: nothing is served yet, no replica has ever taken a lease here (a first "
        "deployment): start the replicas",
        warning=True,
    )
