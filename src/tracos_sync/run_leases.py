"""A one-shot run beside replicas (``LEASES``): it serves only the integrations no replica
holds, each under a lease of its own for the run's length (renewed, fenced, given back at the
end), and leaves the others to the replica serving them. Like a replica, it serves nothing
while replicas of another LEASE_COLLECTION serve the same TracOS collections
(``CollectionGuard``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog

from tracos_sync.app import Database, Runtime
from tracos_sync.domain.errors import ConfigurationError, SyncError
from tracos_sync.domain.fence import Fence
from tracos_sync.domain.ports import LeaseStore
from tracos_sync.leases.collection_guard import CollectionGuard, pick_one
from tracos_sync.leases.keeper import DEADLINE_SHARE, RENEWALS
from tracos_sync.leases.serving import replica_name

log = structlog.get_logger("tracos_sync.leases")


@contextlib.asynccontextmanager
async def run_leases(
    runtime: Runtime, database: Database, dry_run: bool
) -> AsyncIterator[dict[str, Fence] | None]:
    """The fences of the integrations this run may serve; None: leases are not in use (or a
    dry run, which writes nothing)."""
    settings = runtime.settings
    if not settings.leases or dry_run:
        yield None
        return
    ttl = settings.lease_seconds
    store = database.lease_store(
        settings.mongo_database, settings.lease_collection, ttl, runtime.integrations
    )
    holder = f"run:{replica_name()}"
    registry = database.replica_registry(
        settings.mongo_database, settings.lease_collection, ttl, runtime.integrations
    )
    guard = CollectionGuard(registry, holder, ttl, settings.lease_collection)
    if not await guard.may_serve():
        # Said in full by the guard; a cron job must not read this as a quiet success.
        with contextlib.suppress(SyncError):
            await guard.leave()
        mine = settings.lease_collection
        others = guard.other_lease_collections
        raise ConfigurationError(
            f"nothing done: replicas of LEASE_COLLECTION {', '.join(others)} serve these "
            f"TracOS collections, this run's is {mine} (see lease.collection_conflict); "
            f"{pick_one(mine, others)}"
        )
    fences: dict[str, Fence] = {}
    for integration in runtime.integrations:
        sent = time.monotonic()
        lease = await store.take(integration.name, holder, ttl)
        if lease is None:
            log.info(
                "lease.held_elsewhere",
                integration=integration.name,
                reason="a replica serves it: this run leaves it to that replica",
            )
            continue
        fences[integration.name] = Fence(lease, sent + ttl * DEADLINE_SHARE)
    renewing = asyncio.create_task(_renew(store, guard, fences, ttl))
    try:
        yield fences
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        for fence in fences.values():
            fence.lose()
            with contextlib.suppress(SyncError):
                await store.give_back(fence.lease)
        with contextlib.suppress(SyncError):
            await guard.leave()


async def _renew(
    store: LeaseStore, guard: CollectionGuard, fences: dict[str, Fence], ttl: float
) -> None:
    """Every third of the TTL while the run lasts; a lease not renewed is lost (its fence
    closes at its deadline, and its writes stop), and so is every lease once replicas of
    another lease collection serve first."""
    while True:
        await asyncio.sleep(ttl / RENEWALS)
        with contextlib.suppress(SyncError):
            if not await guard.may_serve():
                for fence in fences.values():
                    fence.lose()
        held = [fence for fence in fences.values() if fence.writable()]
        sent = time.monotonic()
        try:
            answers = await store.renew([fence.lease for fence in held], ttl)
        except SyncError:
            continue
        for fence, renewed in zip(held, answers, strict=True):
            if renewed is None:
                fence.lose()
            else:
                fence.renewed(renewed, sent + ttl * DEADLINE_SHARE)
