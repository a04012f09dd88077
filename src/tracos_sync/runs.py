"""The owner of a run: it opens the adapters of each integration (``syncer.py``), runs a cycle
(both directions, or one) of each, all at once, and returns what each did (``outcomes.py``).
The command line (one run) and watch mode (a run per sweep) both go through it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime

import structlog

from tracos_sync.app import Database, Integration, Runtime, open_database
from tracos_sync.domain.fence import Fence
from tracos_sync.failures import describe_error
from tracos_sync.outcomes import RunOutcome, outcomes_for, publish
from tracos_sync.pipeline import Stopwatch
from tracos_sync.run_leases import run_leases
from tracos_sync.syncer import Command, RunOptions, Syncer, open_syncer

__all__ = [
    "Command",
    "RunOptions",
    "RunOutcome",
    "describe_error",
    "named_progress",
    "outcomes_for",
    "publish",
    "run_once",
    "sweep",
]


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

    async def one(
        database: Database,
        integration: Integration,
        outcome: RunOutcome,
        fences: dict[str, Fence] | None,
    ) -> None:
        if runtime.named:  # this task's own context: its log lines only
            structlog.contextvars.bind_contextvars(integration=integration.name)
        fence = None
        if fences is not None:  # LEASES: only what no replica serves
            fence = fences.get(integration.name)
            if fence is None:
                outcome.completed = True
                return
        hooks = named_progress(options, integration.name) if runtime.named else options
        async with open_syncer(
            runtime, database, integration, command, hooks, fence=fence
        ) as syncer:
            outcome.durations = syncer.durations
            await syncer.cycle(outcome.stats)
        outcome.completed = not (options.stop is not None and options.stop())

    async def work() -> None:
        async with (
            open_database(runtime, options.dry_run) as database,
            run_leases(runtime, database, options.dry_run) as fences,
        ):
            await asyncio.gather(
                *(
                    _recorded(outcome, one(database, integration, outcome, fences))
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
