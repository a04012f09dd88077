"""The adapters of one integration, opened once (``open_syncer``) and driven a cycle at a
time: both directions, or one, each timed, a failure of one not keeping the other from running.
One run and every sweep of watch mode go through a ``Syncer``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import structlog

from tracos_sync.app import Database, Integration, Runtime
from tracos_sync.domain.fence import Fence
from tracos_sync.domain.ports import (
    ClientSink,
    ClientSource,
    ConnectorContext,
    ConnectorStateStore,
    WorkOrderRepository,
)
from tracos_sync.failures import describe_error
from tracos_sync.pipeline import ProgressHook, RunStats, Stopwatch, sync_inbound, sync_outbound

log = structlog.get_logger("tracos_sync")

Command = Literal["run", "inbound", "outbound", "watch"]


@dataclass(slots=True)
class RunOptions:
    dry_run: bool = False
    progress: ProgressHook | None = None
    stop: Callable[[], bool] | None = None


def _log_other(direction: str, exc: Exception) -> None:
    log.error("run.failed", direction=direction, error=describe_error(exc))


@dataclass(slots=True)
class Syncer:
    """The adapters of one integration, opened once and used for one run or many (watch)."""

    integration: Integration
    repository: WorkOrderRepository
    state: ConnectorStateStore
    options: RunOptions
    batch_size: int
    lock_timeout_seconds: float = 10.0
    clock_skew_seconds: float = 300.0
    source: ClientSource | None = None
    sink: ClientSink | None = None
    durations: dict[str, float] = field(default_factory=dict)
    # Told of a direction's failure when the other direction failed first (that one is raised):
    # one-shot runs log it; watch logs it once per change of state, like the first.
    other_failure: Callable[[str, Exception], None] = field(default=_log_other)
    _prepared: set[str] = field(default_factory=set)

    async def open(self, command: Command) -> None:
        """Build the adapters; each is prepared in its own direction's turn, so that one that
        cannot be (a folder that cannot be created) does not keep the other direction from
        running."""
        context = ConnectorContext(
            self.state, self.options.dry_run, self.lock_timeout_seconds, self.clock_skew_seconds
        )
        if command in ("run", "inbound", "watch"):
            self.source = self.integration.connector.source(context)
        if command in ("run", "outbound", "watch"):
            self.sink = self.integration.connector.sink(context)

    async def _prepare(self, direction: str, adapter: ClientSource | ClientSink) -> None:
        if direction not in self._prepared:
            await adapter.prepare()
            self._prepared.add(direction)

    async def cycle(self, stats: RunStats, *, follow: float = 0.0) -> None:
        """One pass of each opened direction, inbound first. A failure of one direction does
        not keep the other from running; the first failure is raised once both have run.
        ``follow`` (watch mode): see ``sync_inbound``."""
        hooks: dict[str, Any] = {}
        if self.options.progress is not None:
            hooks["progress"] = self.options.progress
        if self.options.stop is not None:
            hooks["stop"] = self.options.stop
        # Before every sweep, not only at start-up: an index dropped meanwhile is rebuilt
        # before anything is written (and a non-guarantee stops the sweep).
        await self.repository.prepare()
        failures: list[tuple[str, Exception]] = []
        if self.source is not None:
            with self._timed("inbound"), _collect(failures, "inbound"):
                await self._prepare("inbound", self.source)
                await sync_inbound(
                    self.source,
                    self.repository,
                    stats,
                    self.batch_size,
                    follow=follow,
                    clock_skew=timedelta(seconds=self.clock_skew_seconds),
                    **hooks,
                )
        if self.sink is not None:
            with self._timed("outbound"), _collect(failures, "outbound"):
                await self._prepare("outbound", self.sink)
                await sync_outbound(
                    self.repository,
                    self.sink,
                    stats,
                    self.batch_size,
                    clock_skew=timedelta(seconds=self.clock_skew_seconds),
                    **hooks,
                )
        if failures:
            for direction, exc in failures[1:]:
                self.other_failure(direction, exc)
            raise failures[0][1]

    @contextlib.contextmanager
    def _timed(self, direction: str) -> Iterator[None]:
        """Record how long ``direction`` took, whether it completed or not."""
        watch = Stopwatch()
        try:
            yield
        finally:
            self.durations[direction] = watch.elapsed()

    async def close(self) -> None:
        for adapter in (self.source, self.sink):
            if adapter is not None:
                await adapter.close()


@contextlib.contextmanager
def _collect(failures: list[tuple[str, Exception]], direction: str) -> Iterator[None]:
    """Keep a direction's failure for later (the first is raised, the others told apart)."""
    try:
        yield
    except Exception as exc:
        failures.append((direction, exc))


@contextlib.asynccontextmanager
async def open_syncer(
    runtime: Runtime,
    database: Database,
    integration: Integration,
    command: Command,
    options: RunOptions,
    *,
    fence: Fence | None = None,
) -> AsyncIterator[Syncer]:
    """``fence``: the lease this replica holds on ``integration`` (watch mode with LEASES);
    every write on its behalf is conditional on it."""
    stores = database.stores(integration, fence)
    batch_size = runtime.settings.batch_size
    syncer = Syncer(
        integration,
        stores.repository,
        stores.state,
        options,
        batch_size,
        runtime.settings.lock_timeout_seconds,
        runtime.settings.client_clock_skew_seconds,
    )
    try:
        await syncer.open(command)
        yield syncer
    finally:
        await syncer.close()
