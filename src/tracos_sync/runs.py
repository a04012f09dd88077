"""The owner of a run: it opens the adapters, runs a cycle (both directions, or one), times it,
and returns counts, durations and the error if any; it writes the summary line and the report.
The command line (one run) and watch mode (a run per sweep) both go through it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import structlog

from tracos_sync.app import Runtime, open_stores
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


@dataclass(slots=True)
class Syncer:
    """The adapters of one process, opened once and used for one run or many (watch)."""

    runtime: Runtime
    repository: WorkOrderRepository
    state: ConnectorStateStore
    options: RunOptions
    source: ClientSource | None = None
    sink: ClientSink | None = None
    durations: dict[str, float] = field(default_factory=dict)
    _prepared: set[str] = field(default_factory=set)

    async def open(self, command: Command) -> None:
        """Build the adapters; each is prepared in its own direction's turn, so that one that
        cannot be (a folder that cannot be created) does not keep the other direction from
        running."""
        context = ConnectorContext(self.state, self.options.dry_run)
        if command in ("run", "inbound"):
            self.source = self.runtime.connector.source(context)
        if command in ("run", "outbound"):
            self.sink = self.runtime.connector.sink(context)

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
        batch_size = self.runtime.settings.batch_size
        # Before every sweep, not only at start-up: an index dropped meanwhile is rebuilt
        # before anything is written (and a non-guarantee stops the sweep).
        await self.repository.prepare()
        failures: list[Exception] = []
        if self.source is not None:
            with self._timed("inbound"), _collect(failures, "inbound"):
                await self._prepare("inbound", self.source)
                await sync_inbound(
                    self.source, self.repository, stats, batch_size, follow=follow, **hooks
                )
        if self.sink is not None:
            with self._timed("outbound"), _collect(failures, "outbound"):
                await self._prepare("outbound", self.sink)
                await sync_outbound(self.repository, self.sink, stats, batch_size, **hooks)
        if failures:
            raise failures[0]

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
def _collect(failures: list[Exception], direction: str) -> Iterator[None]:
    """Keep a direction's failure for later; the second of two is logged here, the first is
    raised (and reported) by the caller."""
    try:
        yield
    except Exception as exc:
        if failures:
            log.error("run.failed", direction=direction, error=describe_error(exc))
        failures.append(exc)


@contextlib.asynccontextmanager
async def open_syncer(
    runtime: Runtime, command: Command, options: RunOptions, log_retries: bool = True
) -> AsyncIterator[Syncer]:
    async with open_stores(runtime, options.dry_run, log_retries) as stores:
        syncer = Syncer(runtime, stores.repository, stores.state, options)
        try:
            await syncer.open(command)
            yield syncer
        finally:
            await syncer.close()


@dataclass(slots=True)
class RunOutcome:
    """What one run (or one sweep of watch) did."""

    command: Command
    dry_run: bool
    stats: RunStats = field(default_factory=RunStats)
    durations: dict[str, float] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: Exception | None = None

    @property
    def status(self) -> str:
        return "ok" if self.error is None else "failed"


async def run_once(
    runtime: Runtime, command: Command, options: RunOptions, outcome: RunOutcome | None = None
) -> RunOutcome:
    """One sync: inbound then outbound (or one of them), on adapters opened for it. Every
    failure ends up in the outcome; nothing but cancellation is raised (``outcome``, when
    given, holds what was done by then)."""
    into = outcome or RunOutcome(command, options.dry_run)

    async def work() -> None:
        async with open_syncer(runtime, command, options) as syncer:
            into.durations = syncer.durations
            await syncer.cycle(into.stats)

    return await _recorded(into, work())


async def sweep(syncer: Syncer, command: Command, *, follow: float = 0.0) -> RunOutcome:
    """One cycle on adapters that stay open (watch mode)."""
    outcome = RunOutcome(command, syncer.options.dry_run, durations=syncer.durations)
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
    return outcome


def publish(runtime: Runtime, outcome: RunOutcome, *, quiet_when_idle: bool = False) -> bool:
    """The report (with ``REPORT_PATH``), then the summary line, which is the run's last word.
    ``quiet_when_idle``: a sweep that did nothing says nothing (watch). Returns False when the
    report could not be written (logged, and the summary says failed; never raised)."""
    idle = not outcome.stats.did_something()
    reported = True
    path = runtime.settings.report_path
    if path is not None and not (quiet_when_idle and idle and outcome.error is None):
        error = None
        if outcome.error is not None:
            error = redact_text(describe_error(outcome.error), runtime.secrets)
        try:
            write_report(path, outcome, error)
        except OSError as exc:
            log.error("report.failed", path=str(path), error=exc.strerror or str(exc))
            reported = False
    if not (quiet_when_idle and idle):
        flags: dict[str, Any] = {"dry_run": True} if outcome.dry_run else {}
        log.info(
            "run.summary",
            command=outcome.command,
            status=outcome.status if reported else "failed",
            **flags,
            **outcome.stats.as_fields(),
        )
    return reported


def write_report(path: Path, outcome: RunOutcome, error: str | None) -> None:
    """The run's JSON report, written atomically (temp file, rename)."""
    report = {
        "command": outcome.command,
        "status": outcome.status,
        "dryRun": outcome.dry_run,
        "startedAt": format_instant(outcome.started),
        "finishedAt": format_instant(datetime.now(UTC)),
        "seconds": {"total": round(outcome.stats.seconds, 3)}
        | {k: round(v, 3) for k, v in outcome.durations.items()},
        "counts": outcome.stats.counts(),
        "error": error,
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
