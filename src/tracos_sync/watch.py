"""Watch mode: sync continuously until SIGINT/SIGTERM.

A sweep runs every ``WATCH_INTERVAL`` seconds, and at once when something may be waiting: a
file arriving in the inbound folder (file-system events, ``WATCH_EVENTS``), a TracOS write seen on
a MongoDB change stream, when the server offers one. Both are hints: the sweep stays the source of
truth, so nothing is missed if events are lost or the stream drops. Under a steady flow a sweep
goes on taking files as they arrive (for ``FOLLOW_SECONDS``), each batch what arrived while the
one before was written, so batches grow with the flow.

Whatever one sweep runs into — the database away, a folder unwritable, a report that cannot be
written, a bug — is logged once per change of state, counted, and waited out; the loop goes on.
An ERP that asks to wait (``Retry-After``) or refuses our credentials is waited out longer
(``watch_backoff``).
On a signal the batch in hand gets a few seconds to finish, then is abandoned (its inputs are
given back for the next run), and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from tracos_sync.app import Database, Integration, Runtime, open_database
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.fence import Fence, LeaseLost
from tracos_sync.domain.ports import SupportsBacklog, SupportsCertificates, SupportsInputEvents
from tracos_sync.domain.ports.repository import CHANGE_WAIT_SECONDS
from tracos_sync.failures import describe_error
from tracos_sync.outcomes import RunOutcome, publish
from tracos_sync.runs import sweep
from tracos_sync.stopping import (
    MOMENT_SECONDS,
    Abandoned,
    given_a_moment,
    stop_on_signals,
    until_stopped,
)
from tracos_sync.syncer import RunOptions, Syncer, open_syncer
from tracos_sync.watch_backoff import ClientBackoff
from tracos_sync.watch_events import InputWaker
from tracos_sync.watch_health import WatchHealth
from tracos_sync.watch_leases import serve_leased
from tracos_sync.watch_metrics import IntegrationMetrics, Metrics

log = structlog.get_logger("tracos_sync.watch")
T = TypeVar("T")

# How long one sweep goes on taking files that arrived while it ran (folder connector), before it
# lets outbound have its turn: a file arriving under a steady flow is taken right after the batch
# in hand rather than after this sweep and the start of the next; TracOS's changes wait at most
# this long (plus a batch) for theirs.
FOLLOW_SECONDS = 0.25


async def watch(runtime: Runtime, options: RunOptions) -> None:
    """Every integration at once, each in its own loop: one's failures are its own."""
    settings = runtime.settings
    stop = asyncio.Event()
    options.stop = stop.is_set
    metrics = Metrics() if settings.metrics_port else None
    if metrics is not None and settings.metrics_port is not None:
        try:
            metrics.serve(settings.metrics_address, settings.metrics_port)
        except OSError as exc:  # a port in use, an address that is not this host's
            raise ConfigurationError(
                f"METRICS_ADDRESS/METRICS_PORT: cannot serve metrics on "
                f"{settings.metrics_address}:{settings.metrics_port}: {exc.strerror or exc}"
            ) from exc
    reports = Reports(runtime)
    health = WatchHealth(None)  # the database as a whole (opening it, the embedded server)
    try:
        with stop_on_signals(stop):

            async def serve_all() -> None:
                async with open_database(runtime, log_retries=False) as database:
                    if settings.leases:

                        async def serve(
                            integration: Integration, own_stop: asyncio.Event, fence: Fence
                        ) -> None:
                            await _watch_integration(
                                runtime,
                                database,
                                integration,
                                options=dataclasses.replace(options, stop=own_stop.is_set),
                                stop=own_stop,
                                metrics=metrics,
                                reports=reports,
                                fence=fence,
                            )

                        await serve_leased(runtime, database, serve, stop, metrics)
                        return
                    await _all(
                        _watch_integration(
                            runtime,
                            database,
                            integration,
                            options=options,
                            stop=stop,
                            metrics=metrics,
                            reports=reports,
                        )
                        for integration in runtime.integrations
                    )

            await _until_stopped(serve_all, stop, health, settings.watch_interval)
    finally:
        if metrics is not None:
            metrics.close()
    log.info("watch.stopped", reason="signal")


async def _all(loops: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run the loops together until all end; the first to raise ends the others."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Reports:
    """The report of watch mode: the last sweep that did something of each integration."""

    def __init__(self, runtime: Runtime) -> None:
        self._last: dict[str, RunOutcome] = {}
        self._order = [integration.name for integration in runtime.integrations]

    def add(self, outcome: RunOutcome) -> list[RunOutcome]:
        if outcome.stats.did_something() or outcome.error is not None:
            self._last[outcome.integration] = outcome
        return [self._last[name] for name in self._order if name in self._last]


async def _watch_integration(
    runtime: Runtime,
    database: Database,
    integration: Integration,
    *,
    options: RunOptions,
    stop: asyncio.Event,
    metrics: Metrics | None,
    reports: Reports,
    fence: Fence | None = None,
) -> None:
    """``fence``: the lease this replica holds on ``integration`` (LEASES): its loop ends when
    a write finds the lease lost."""
    if runtime.named:  # this task's own context: its log lines only
        structlog.contextvars.bind_contextvars(integration=integration.name)
    settings = runtime.settings
    own_metrics = metrics.of(integration.name) if metrics is not None else None
    health = WatchHealth(own_metrics)
    connector = integration.connector
    waker = None
    if settings.watch_events and isinstance(connector, SupportsInputEvents):
        waker = InputWaker(connector, settings.watch_interval)
    log.info(
        "watch.started",
        interval=settings.watch_interval,
        events=waker is not None,
        **connector.describe(),
    )
    backoff = ClientBackoff(settings.watch_interval)
    serving = Serving(runtime, stop, health, own_metrics, reports, waker, backoff)

    async def serve() -> None:
        async with open_syncer(
            runtime, database, integration, "watch", options, fence=fence
        ) as syncer:
            syncer.other_failure = lambda _, exc: health.failed(exc, counted=False)
            await _serve(syncer, serving)

    await _until_stopped(serve, stop, health, settings.watch_interval)


async def _until_stopped(
    work: Callable[[], Awaitable[None]], stop: asyncio.Event, health: WatchHealth, interval: float
) -> None:
    """``work`` again and again until stopped: a failure is classified and waited out; bad
    configuration (and the grace of a stop running out) ends it."""
    while not stop.is_set():
        try:
            await work()
        except (ConfigurationError, Abandoned):
            if stop.is_set():
                return
            raise
        except LeaseLost:
            return  # this integration's work ends here; the lease keeper says so
        except Exception as exc:
            health.failed(exc)
            await _sleep(stop, interval)


@dataclass(slots=True)
class Serving:
    """What one integration's sweeps share besides their adapters."""

    runtime: Runtime
    stop: asyncio.Event
    health: WatchHealth
    metrics: IntegrationMetrics | None
    reports: Reports
    waker: InputWaker | None
    backoff: ClientBackoff  # the next sweep's wait, for what the client side said


async def _serve(syncer: Syncer, serving: Serving) -> None:
    """Sweeps on one set of open adapters until stopped. A failed sweep is classified, waited
    out and tried again on the same adapters (the driver reconnects by itself)."""
    stop, health, metrics, waker = serving.stop, serving.health, serving.metrics, serving.waker
    runtime = serving.runtime
    wake = asyncio.Event()
    follower: asyncio.Task[None] | None = None
    ending = asyncio.Event()
    connector = syncer.integration.connector
    follow = FOLLOW_SECONDS if isinstance(connector, SupportsInputEvents) else 0.0
    try:
        while not stop.is_set():
            if follower is None or follower.done():
                follower = asyncio.create_task(_follow_changes(syncer, wake, ending))
            woken = waker is not None and waker.woke()
            wake.clear()
            outcome = await until_stopped(sweep(syncer, "watch", follow=follow), stop)
            if isinstance(outcome.error, LeaseLost):
                return  # this integration's work ends here: the lease keeper says so, once
            # A failure alone is logged by WatchHealth, once per change of state.
            publish(
                runtime,
                [outcome],
                quiet_when_idle=True,
                report=serving.reports.add(outcome),
                total=False,
            )
            if metrics is not None:
                metrics.observe(outcome.stats)
            if outcome.error is None:
                health.succeeded()
            else:
                health.failed(outcome.error)
            if metrics is not None:
                await _observe_backlogs(syncer, metrics, stop)
            if waker is not None:
                # After the sweep, which creates the folder it watches; it wakes us once when it
                # watches, for what arrived between the sweep's listing and then.
                waker.swept(outcome.stats, woken)
                waker.follow(wake)
            failed = outcome.error is not None
            await _sleep(stop, serving.backoff.after(outcome.error), None if failed else wake)
    finally:
        if waker is not None:
            await waker.close()  # it sets this ``wake``: the next adapters get their own
        if follower is not None:
            ending.set()  # it ends after its wait in hand; cancelled only if it does not
            await given_a_moment(follower, CHANGE_WAIT_SECONDS + MOMENT_SECONDS)


async def _observe_backlogs(
    syncer: Syncer, metrics: IntegrationMetrics, stop: asyncio.Event
) -> None:
    """Backlog gauges: best effort, a failure here is logged and the gauges keep their value."""
    try:
        age = await until_stopped(syncer.repository.oldest_unsynced_age(), stop)
        metrics.oldest_unsynced.set(age or 0)
        connector = syncer.integration.connector
        if isinstance(connector, SupportsBacklog):
            backlog = await until_stopped(connector.backlog(), stop)
            metrics.inbound_waiting.set(backlog.waiting)
            metrics.inbound_oldest.set(backlog.oldest_seconds or 0)
        if isinstance(connector, SupportsCertificates):
            expiry = await asyncio.to_thread(connector.certificate_expiry)
            if expiry is not None:
                metrics.certificate(expiry)
    except Abandoned:
        raise
    except Exception as exc:
        log.warning("watch.metrics_failed", error=describe_error(exc))


async def _follow_changes(syncer: Syncer, wake: asyncio.Event, ending: asyncio.Event) -> None:
    """Wake the loop when TracOS writes something that may need to go out; until ``ending``,
    seen between two waits of the change stream (never cancelled inside one)."""
    try:
        async with contextlib.aclosing(syncer.repository.unsynced_changes()) as changes:
            async for changed in changes:
                if ending.is_set():
                    return
                if changed:
                    wake.set()
    except Exception as exc:
        log.info("watch.change_stream", state="not available, polling", error=describe_error(exc))


async def _sleep(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Until ``seconds`` pass, the process is asked to stop, or ``wake`` is set."""
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
