"""Watch mode: sync continuously until SIGINT/SIGTERM.

Inbound files are picked up by polling every ``WATCH_INTERVAL`` seconds. Outbound also reacts at
once to TracOS writes seen on a MongoDB change stream, when the server offers one; the sweep of
unsynced documents stays the source of truth, so nothing is missed if the stream drops. A
database outage is waited out, logged once when it starts and once when it ends. On a signal the
batch in hand is finished and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.errors import PyMongoError

from tracos_sync.app import RunOptions, Runtime, Syncer, open_syncer, write_report
from tracos_sync.domain.errors import ConfigurationError, SyncError
from tracos_sync.pipeline import RunStats, Stopwatch
from tracos_sync.tracos.retry import describe

log = structlog.get_logger("tracos_sync.watch")


class Metrics:
    """Prometheus metrics of the watch loop, served on ``METRICS_PORT``."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.outcomes = Counter(
            "tracos_sync_outcomes",
            "Files and work orders handled, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.cycle_seconds = Histogram(
            "tracos_sync_cycle_seconds",
            "Duration of one sync cycle (inbound then outbound)",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
        )
        self.cycle_failures = Counter(
            "tracos_sync_cycle_failures",
            "Sync cycles that could not complete",
            registry=self.registry,
        )
        self.oldest_unsynced = Gauge(
            "tracos_sync_oldest_unsynced_seconds",
            "Age of the oldest TracOS work order waiting to go out (0 when none)",
            registry=self.registry,
        )
        self.database_up = Gauge(
            "tracos_sync_database_up",
            "1 when the last cycle reached MongoDB",
            registry=self.registry,
        )
        self._server: Any = None

    def serve(self, address: str, port: int) -> None:
        from prometheus_client import start_http_server

        self._server, _ = start_http_server(port, addr=address, registry=self.registry)
        log.info("watch.metrics", address=address, port=port, path="/metrics")

    def observe(self, stats: RunStats) -> None:
        for outcome, count in stats.as_fields().items():
            if outcome != "seconds" and count:
                self.outcomes.labels(outcome).inc(count)
        self.cycle_seconds.observe(stats.seconds)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()


class _State:
    """Logs the database's state only when it changes, not at every attempt."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.up: bool | None = None
        self._metrics = metrics

    def set(self, up: bool, error: str = "") -> None:
        if self._metrics is not None:
            self._metrics.database_up.set(1 if up else 0)
        if up == self.up:
            return
        if up:
            log.info("watch.database", state="available")
        else:
            log.error("watch.database", state="unavailable, retrying", error=error)
        self.up = up


async def watch(runtime: Runtime, options: RunOptions) -> None:
    settings = runtime.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    options.stop = stop.is_set
    metrics = Metrics() if settings.metrics_port else None
    if metrics is not None and settings.metrics_port is not None:
        metrics.serve(settings.metrics_address, settings.metrics_port)
    state = _State(metrics)
    log.info("watch.started", interval=settings.watch_interval, **runtime.connector.describe())
    try:
        while not stop.is_set():
            try:
                async with open_syncer(runtime, "run", options, log_retries=False) as syncer:
                    await _serve(
                        runtime, syncer, options=options, stop=stop, state=state, metrics=metrics
                    )
            except ConfigurationError:
                raise
            except SyncError as exc:
                if metrics is not None:
                    metrics.cycle_failures.inc()
                cause = exc.__cause__
                state.set(False, describe(cause) if cause is not None else str(exc))
                await _sleep(stop, settings.watch_interval)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if metrics is not None:
            metrics.close()
    log.info("watch.stopped", reason="signal")


async def _serve(
    runtime: Runtime,
    syncer: Syncer,
    *,
    options: RunOptions,
    stop: asyncio.Event,
    state: _State,
    metrics: Metrics | None,
) -> None:
    """Cycles on one set of open adapters until stopped or until a cycle fails."""
    wake = asyncio.Event()
    follower: asyncio.Task[None] | None = None
    try:
        while not stop.is_set():
            if follower is None or follower.done():
                follower = asyncio.create_task(_follow_changes(syncer, wake))
            wake.clear()
            stats = RunStats()
            clock = Stopwatch()
            started = datetime.now(UTC)
            try:
                await syncer.cycle(stats)
            finally:
                stats.seconds = clock.elapsed()
            state.set(True)
            if metrics is not None:
                metrics.observe(stats)
                age = await syncer.repository.oldest_unsynced_age()
                metrics.oldest_unsynced.set(age or 0)
            if any(v for k, v in stats.as_fields().items() if k != "seconds"):
                log.info("run.summary", command="watch", status="ok", **stats.as_fields())
                if runtime.settings.report_path is not None:
                    write_report(
                        runtime.settings.report_path,
                        command="watch",
                        status="ok",
                        stats=stats,
                        durations=syncer.durations,
                        started=started,
                        dry_run=options.dry_run,
                        error=None,
                    )
            await _sleep(stop, runtime.settings.watch_interval, wake)
    finally:
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower


async def _follow_changes(syncer: Syncer, wake: asyncio.Event) -> None:
    """Wake the loop when TracOS writes something that may need to go out."""
    try:
        async with await syncer.repository.unsynced_changes() as stream:
            log.debug("watch.change_stream", state="following")
            async for _ in stream:
                wake.set()
    except PyMongoError as exc:
        log.info("watch.change_stream", state="not available, polling", error=describe(exc))


async def _sleep(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Until ``seconds`` pass, the process is asked to stop, or ``wake`` is set."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
