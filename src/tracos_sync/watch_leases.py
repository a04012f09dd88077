"""Watch mode shared by replicas (``LEASES``): the lease keeper decides which integrations this
replica serves; each one it holds runs its own watch loop, every write fenced by its lease, and
is stopped when its lease is lost or given back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import structlog

from tracos_sync.app import Database, Integration, Runtime
from tracos_sync.domain.fence import Fence
from tracos_sync.leases.keeper import LeaseKeeper
from tracos_sync.stopping import STOP_GRACE_SECONDS

log = structlog.get_logger("tracos_sync.leases")

# One integration's watch loop: the integration, the event that stops it, the fence of its writes.
Serve = Callable[[Integration, asyncio.Event, Fence], Coroutine[Any, Any, None]]


def replica_name() -> str:
    """This process among the replicas: its host and pid (what an operator looks for), and a
    random tail, since in containers every replica may be pid 1 on a host of the same name."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeasedWork:
    """The keeper's ``Work``: a task per integration whose lease this replica holds."""

    def __init__(self, integrations: Sequence[Integration], serve: Serve) -> None:
        self._by_name = {integration.name: integration for integration in integrations}
        self._serve = serve
        self._running: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}

    async def start(self, name: str, fence: Fence) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._serve(self._by_name[name], stop, fence))
        self._running[name] = (task, stop)

    async def stop(self, name: str) -> None:
        """The batch in hand may finish (its writes still fenced); then the loop is cancelled."""
        running = self._running.pop(name, None)
        if running is None:
            return
        task, stop = running
        stop.set()
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS + 1)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def stop_all(self) -> None:
        for name in list(self._running):
            await self.stop(name)

    def serving(self) -> list[str]:
        return sorted(self._running)


async def serve_leased(
    runtime: Runtime, database: Database, serve: Serve, stop: asyncio.Event
) -> None:
    """Keep leases until ``stop``, serving the integrations held; every lease is given back and
    this replica's heartbeat removed on the way out."""
    settings = runtime.settings
    ttl = settings.lease_seconds
    store = database.lease_store(settings.mongo_database, settings.lease_collection, ttl)
    work = LeasedWork(runtime.integrations, serve)
    names = [integration.name for integration in runtime.integrations]
    keeper = LeaseKeeper(store, names, replica_name(), ttl, work=work)
    log.info("lease.replica", replica=keeper.replica, integrations=len(names), ttl=ttl)
    try:
        await keeper.run(stop)
    finally:
        await work.stop_all()
