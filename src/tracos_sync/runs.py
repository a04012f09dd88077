"""The owner of a run: it opens the adapters, runs a cycle (both directions, or one) of each
integration, times it, and returns counts, durations and the error if any, per integration; it
writes the summary lines and the report. The command line (one run) and watch mode (a run per
sweep) both go through it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog

from tracos_sync.app import DEFAULT_INTEGRATION, Database, Integration, Runtime, open_database
from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.errors import SyncError
from tracos_sync.domain.ports import (
    ClientSink,
    ClientSource,
    ConnectorContext,
    ConnectorStateStore,
    WorkOrderRepository,
)
from tracos_sync.logs import redact_text
from tracos_sync.pipeline import ProgressHook, RunStats, Stopwatch, sync_inbound, sync_outbound
from tracos_sync.tracos.retry import describe

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


def describe_error(exc: BaseException) -> str:
    """One readable line for any failure: our own errors with their cause, others typed."""
    if isinstance(exc, SyncError):
        message = str(exc)
        if exc.__cause__ is not None and describe(exc.__cause__) not in message:
            message += f" ({describe(exc.__cause__)})"
        return message
    return f"{type(exc).__name__}: {describe(exc)}"


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
) -> AsyncIterator[Syncer]:
    stores = database.stores(integration)
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


@dataclass(slots=True)
class RunOutcome:
    """What one run (or one sweep of watch) of one integration did."""

    command: Command
    dry_run: bool
    integration: str = DEFAULT_INTEGRATION
    stats: RunStats = field(default_factory=RunStats)
    durations: dict[str, float] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: Exception | None = None
    # Done before any stop was asked for: nothing was left for a signal to cut short.
    completed: bool = False
    finished: datetime | None = None

    @property
    def status(self) -> str:
        """failed: an error stopped it; partial: it completed but left work for a later run
        (deferred: a lock held too long); ok."""
        if self.error is not None:
            return "failed"
        return "partial" if self.stats.deferred else "ok"


def outcomes_for(runtime: Runtime, command: Command, dry_run: bool) -> list[RunOutcome]:
    """One empty outcome per integration, in order."""
    return [RunOutcome(command, dry_run, i.name) for i in runtime.integrations]


async def run_once(
    runtime: Runtime,
    command: Command,
    options: RunOptions,
    outcomes: list[RunOutcome] | None = None,
) -> list[RunOutcome]:
    """One sync of every integration, all at once, each on adapters opened for it: inbound then
    outbound (or one of them). One integration's failure is its own: the others run on. Every
    failure ends up in the outcomes; nothing but cancellation is raised (``outcomes``, when
    given, one per integration in order, hold what was done by then)."""
    into = outcomes if outcomes is not None else outcomes_for(runtime, command, options.dry_run)

    async def one(database: Database, integration: Integration, outcome: RunOutcome) -> None:
        if runtime.named:  # this task's own context: its log lines only
            structlog.contextvars.bind_contextvars(integration=integration.name)
        hooks = named_progress(options, integration.name) if runtime.named else options
        async with open_syncer(runtime, database, integration, command, hooks) as syncer:
            outcome.durations = syncer.durations
            await syncer.cycle(outcome.stats)
        outcome.completed = not (options.stop is not None and options.stop())

    async def work() -> None:
        async with open_database(runtime, options.dry_run) as database:
            await asyncio.gather(
                *(
                    _recorded(outcome, one(database, integration, outcome))
                    for integration, outcome in zip(runtime.integrations, into, strict=True)
                )
            )

    opened = await _recorded(RunOutcome(command, options.dry_run), work())
    for outcome in into:  # the database could not be opened (or closed): it is everyone's
        if outcome.error is None and opened.error is not None:
            outcome.error = opened.error
    return into


def named_progress(options: RunOptions, name: str) -> RunOptions:
    """The same options, progress counted under the integration's name."""
    progress = options.progress
    if progress is None:
        return options

    def named(direction: str, done: int) -> None:
        progress(f"{name} {direction}", done)

    return RunOptions(options.dry_run, named, options.stop)


async def sweep(syncer: Syncer, command: Command, *, follow: float = 0.0) -> RunOutcome:
    """One cycle on adapters that stay open (watch mode)."""
    outcome = RunOutcome(
        command, syncer.options.dry_run, syncer.integration.name, durations=syncer.durations
    )
    return await _recorded(outcome, syncer.cycle(outcome.stats, follow=follow))


async def _recorded(outcome: RunOutcome, work: Awaitable[None]) -> RunOutcome:
    """``work`` timed, its failure kept in ``outcome``."""
    clock = Stopwatch()
    try:
        await work
    except Exception as exc:
        outcome.error = exc
    finally:
        outcome.stats.seconds = clock.elapsed()
        outcome.finished = datetime.now(UTC)
    return outcome


def publish(
    runtime: Runtime,
    outcomes: Sequence[RunOutcome],
    *,
    quiet_when_idle: bool = False,
    report: Sequence[RunOutcome] | None = None,
    total: bool = True,
) -> bool:
    """The report (with ``REPORT_PATH``; of ``report``, by default the ``outcomes``), then the
    summary lines: one per integration and, with an integrations file (and ``total``), the
    total, which is the run's last word.
    ``quiet_when_idle``: a sweep that did nothing says nothing (watch). Returns False when the
    report could not be written (logged, and the summary says failed; never raised)."""
    idle = not any(o.stats.did_something() for o in outcomes)
    failed = any(o.error is not None for o in outcomes)
    reported = True
    path = runtime.settings.report_path
    if path is not None and not (quiet_when_idle and idle and not failed):
        try:
            write_report(path, runtime, outcomes if report is None else report)
        except OSError as exc:
            log.error("report.failed", path=str(path), error=exc.strerror or str(exc))
            reported = False
    for outcome in outcomes:
        if quiet_when_idle and not outcome.stats.did_something():
            continue
        named = {"integration": outcome.integration} if runtime.named else {}
        _summary("run.summary", outcome, reported, **named)
    if total and runtime.named and not (quiet_when_idle and idle):
        _summary("run.total", total_of(outcomes), reported, integrations=len(outcomes))
    return reported


def _summary(event: str, outcome: RunOutcome, reported: bool, **fields: Any) -> None:
    flags: dict[str, Any] = {"dry_run": True} if outcome.dry_run else {}
    log.info(
        event,
        **fields,
        command=outcome.command,
        status=outcome.status if reported else "failed",
        **flags,
        **outcome.stats.as_fields(),
    )


def total_of(outcomes: Sequence[RunOutcome]) -> RunOutcome:
    """Every count summed, the longest duration (they ran at once), failed if any failed."""
    first = outcomes[0]
    total = RunOutcome(first.command, first.dry_run, "*", started=first.started)
    for outcome in outcomes:
        for name, count in outcome.stats.counts().items():
            setattr(total.stats, name, getattr(total.stats, name) + count)
        total.stats.seconds = max(total.stats.seconds, outcome.stats.seconds)
        total.error = total.error or outcome.error
    finished = [o.finished for o in outcomes if o.finished is not None]
    total.finished = max(finished) if finished else None
    return total


def write_report(path: Path, runtime: Runtime, outcomes: Sequence[RunOutcome]) -> None:
    """The run's JSON report, written atomically (temp file, rename): with several
    integrations, the total and each integration's own under ``integrations``."""
    if len(outcomes) == 1:
        report = _report(runtime, outcomes[0])
    else:
        report = _report(runtime, total_of(outcomes)) | {
            "integrations": {o.integration: _report(runtime, o) for o in outcomes}
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _report(runtime: Runtime, outcome: RunOutcome) -> dict[str, Any]:
    error = None
    if outcome.error is not None:
        error = redact_text(describe_error(outcome.error), runtime.secrets)
    return {
        "command": outcome.command,
        "status": outcome.status,
        "dryRun": outcome.dry_run,
        "startedAt": format_instant(outcome.started),
        "finishedAt": format_instant(outcome.finished or datetime.now(UTC)),
        "seconds": {"total": round(outcome.stats.seconds, 3)}
        | {k: round(v, 3) for k, v in outcome.durations.items()},
        "counts": outcome.stats.counts(),
        "error": error,
    }
