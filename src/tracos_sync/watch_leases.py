"""Watch mode shared by replicas (``LEASES``): the lease keeper decides which integrations this
replica serves; each one it holds runs its own watch loop, every write fenced by its lease, and
is stopped when its lease is lost or given back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from tracos_sync.app import Database, Integration, Runtime
from tracos_sync.domain.fence import Fence
from tracos_sync.leases.collection_guard import CollectionGuard
from tracos_sync.leases.keeper import LeaseKeeper
from tracos_sync.leases.serving import replica_name
from tracos_sync.stopping import STOP_GRACE_SECONDS
from tracos_sync.watch_metrics import Metrics

log = structlog.get_logger("tracos_sync.leases")

# One integration's watch loop: the integration, the event that stops it, the fence of its writes.
Serve = Callable[[Integration, asyncio.Event, Fence], Coroutine[Any, Any, None]]


class LeasedWork:
    """The keeper's ``Work``: a task per integration whose lease this replica holds."""

    def __init__(
        self,
        integrations: Sequence[Integration],
        serve: Serve,
        grace: float = STOP_GRACE_SECONDS,
        metrics: Metrics | None = None,
    ) -> None:
        """``grace``: how long the batch in hand may go on once its work is told to stop."""
        self._grace = grace
        self._by_name = {integration.name: integration for integration in integrations}
        self._serve = serve
        self._metrics = metrics
        self._running: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self.replica = ""  # named by the keeper
        # Set by the first integration loop that ends by failing (bad configuration): it ends
        # watch, as without leases, rather than holding a lease nobody serves.
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def start(self, name: str, fence: Fence) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._serve(self._by_name[name], stop, fence))
        task.add_done_callback(self._ended)
        self._running[name] = (task, stop)
        if self._metrics is not None:
            self._metrics.lease_held.labels(name, fence.lease.holder).set(1)
            self._metrics.lease_since.labels(name, fence.lease.holder).set(
                fence.lease.since.timestamp()
            )

    async def stop(self, name: str) -> bool:
        """The batch in hand may finish within the grace (its writes still fenced); then the
        loop is cancelled (its claimed inputs are given back), and given the grace again. False
        when it still has not ended: the keeper then lets its lease expire rather than give it
        back, and the loop is left to end on its own."""
        running = self._running.pop(name, None)
        if running is None:
            return True
        task, stop = running
        stop.set()
        if self._metrics is not None:
            self._metrics.lease_held.labels(name, self.replica).set(0)
        done, _ = await asyncio.wait({task}, timeout=self._grace)
        if not done:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=self._grace)
        if not done:
            log.warning(
                "lease.work_not_stopped",
                integration=name,
                replica=self.replica,
                reason="still ending after its grace and a cancellation; its lease is left "
                "to expire, not given back",
            )
            return False
        return True

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.failed.done():
            return
        failure = task.exception()
        if failure is not None:
            self.failed.set_exception(failure)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(name) for name in list(self._running)))

    def serving(self) -> list[str]:
        return sorted(self._running)


async def serve_leased(
    runtime: Runtime,
    database: Database,
    serve: Serve,
    stop: asyncio.Event,
    metrics: Metrics | None = None,
) -> None:
    """Keep leases until ``stop``, serving the integrations held; every lease is given back and
    this replica's heartbeat removed on the way out."""
    settings = runtime.settings
    ttl = settings.lease_seconds
    store = database.lease_store(
        settings.mongo_database, settings.lease_collection, ttl, runtime.integrations
    )
    # Within the lease's own margin: the keeper goes round again a third of the TTL later.
    grace = min(STOP_GRACE_SECONDS, ttl / 4)
    work = LeasedWork(runtime.integrations, serve, grace, metrics)
    names = [integration.name for integration in runtime.integrations]
    work.replica = replica_name()
    registry = database.replica_registry(
        settings.mongo_database, settings.lease_collection, ttl, runtime.integrations
    )
    guard = CollectionGuard(registry, work.replica, ttl, settings.lease_collection)
    keeper = LeaseKeeper(store, names, work.replica, ttl, work=work, guard=guard)
    log.info("lease.replica", replica=keeper.replica, integrations=len(names), ttl=ttl)
    leaving = asyncio.Event()  # the process asked to stop, or an integration's loop failed
    keeping = asyncio.create_task(keeper.run(leaving))
    stopped = asyncio.create_task(stop.wait())
    try:
        waited: set[asyncio.Future[Any]] = {keeping, stopped, work.failed}
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        leaving.set()
        await keeping  # every lease given back
        if work.failed.done():
            work.failed.result()  # raises what ended that loop
    finally:
        stopped.cancel()
        keeping.cancel()
        await work.stop_all()
