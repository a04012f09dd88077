"""What each command does once its options are parsed: start up (logging, then the runtime),
run, and turn the outcome into an exit code (``exit_codes``)."""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import click
import structlog

from tracos_sync import logs
from tracos_sync.app import (
    Runtime,
    check,
    first_contact,
    load_runtime,
    new_embedded_database,
    open_database,
)
from tracos_sync.app.variables import warn_unknown_variables
from tracos_sync.cli.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, caught, exit_code
from tracos_sync.config import early_log_settings
from tracos_sync.domain.errors import ConfigurationError, FatalError
from tracos_sync.domain.ports import SupportsReplay, SupportsSamples
from tracos_sync.logs import redact_text
from tracos_sync.progress import progress_display
from tracos_sync.runs import Command, RunOptions, RunOutcome, outcomes_for, publish, run_once
from tracos_sync.seed import SeedResult
from tracos_sync.stopping import Abandoned, stop_on_signals, until_stopped

log = structlog.get_logger("tracos_sync")


@dataclass(frozen=True, slots=True)
class Startup:
    """The group's options, and each command's own, for ``_startup``."""

    env_file: str
    integrations_file: str | None = None
    embedded: bool = False
    only: tuple[str, ...] = ()

    def with_(self, embedded: bool = False, only: tuple[str, ...] = ()) -> Startup:
        return Startup(self.env_file, self.integrations_file, embedded, only)


def _startup(startup: Startup, *, checking: bool = False) -> Runtime:
    """Logging as configured (from the first line, a configuration error included), then the
    runtime; a configuration error ends the command with exit 2."""
    logs.configure(*early_log_settings(startup.env_file))
    warn_unknown_variables(startup.env_file, startup.integrations_file)
    try:
        runtime = load_runtime(
            startup.env_file, startup.embedded, startup.integrations_file, startup.only
        )
    except ConfigurationError as exc:
        log.error("config.invalid", error=str(exc))
        if checking:
            click.echo(f"FAIL  {'configuration':<22} {exc}")
        raise click.exceptions.Exit(EXIT_CONFIG) from None
    settings = runtime.settings
    logs.configure(settings.log_level, settings.log_format, _current_secrets(runtime))
    return runtime


def _current_secrets(runtime: Runtime) -> Callable[[], list[str]]:
    """The secrets as they are at each log line (a secret read again from a mounted file is
    redacted too), through a weak reference: the logging configuration outlives the command,
    and holding the runtime (its connectors hold database clients) would keep those clients
    until the interpreter's shutdown, where closing them fails."""
    alive = weakref.ref(runtime)
    last = runtime.secrets

    def current() -> list[str]:
        nonlocal last
        found = alive()
        if found is not None:
            last = found.secrets
        return last

    return current


async def run_sync(startup: Startup, command: Command, dry_run: bool) -> int:
    runtime = _startup(startup)
    for integration in runtime.integrations:
        named = {"integration": integration.name} if runtime.named else {}
        log.info(
            "run.started",
            **named,
            command=command,
            dry_run=dry_run,
            **integration.connector.describe(),
        )
    outcomes = outcomes_for(runtime, command, dry_run)
    stop = asyncio.Event()
    with progress_display(enabled=sys.stdout.isatty()) as progress, stop_on_signals(stop):
        options = RunOptions(dry_run=dry_run, progress=progress, stop=stop.is_set)
        abandoned = False
        try:
            await until_stopped(run_once(runtime, command, options, outcomes), stop)
        except Abandoned:  # ``outcomes`` hold what was done by then
            abandoned = True
    if stop.is_set():
        for outcome in outcomes:
            if outcome.completed:  # it had finished when the signal came
                continue
            outcome.error = outcome.error or FatalError(_CUT if abandoned else _STOPPED)
    now = datetime.now(UTC)
    for outcome in outcomes:
        if outcome.finished is None:  # cut at a stop, its work never ended: timed until now
            outcome.stats.seconds = (now - outcome.started).total_seconds()
            outcome.finished = now
    code = max(_logged_exit_code(runtime, outcome) for outcome in outcomes)
    reported = publish(runtime, outcomes)
    if any(outcome.status == "partial" for outcome in outcomes):
        code = code or EXIT_FAILED  # work was left for the next run (its line said why)
    return code or (EXIT_OK if reported else EXIT_FAILED)


_STOPPED = (
    "stopped by a signal: the batch in hand was finished (or given back); the rest is left "
    "for the next run"
)
# Hostile pass 4, F4: a batch still running after the stop's grace was said finished, with
# seconds=0.
_CUT = (
    "stopped by a signal: the batch in hand was still running after the stop's grace and was "
    "cut; the counts are what was confirmed by then; what it held is given back, or recovered "
    "with its claims; the rest is left for the next run"
)


def _logged_exit_code(runtime: Runtime, outcome: RunOutcome) -> int:
    if not runtime.named:
        return exit_code(outcome.error)
    with structlog.contextvars.bound_contextvars(integration=outcome.integration):
        return exit_code(outcome.error)


async def run_watch(startup: Startup) -> int:
    from tracos_sync.watch import watch

    runtime = _startup(startup)

    async def work() -> None:
        # Watch waits out an outage for ever: a wrong address must end it at once, as a run.
        await first_contact(runtime)
        await watch(runtime, RunOptions())

    _, error = await caught(work())
    return exit_code(error)


async def run_check(startup: Startup) -> int:
    runtime = _startup(startup, checking=True)
    new_database = new_embedded_database(runtime)  # checked in memory: it is still not there
    results, error = await caught(check(runtime))
    width = max([22, *(len(result.name) for result in results or [])])
    for index, result in enumerate(results or []):
        detail = redact_text(result.detail, runtime.secrets)
        level = "FAIL" if not result.ok else "WARN" if result.warning else "ok  "
        click.echo(f"{level}  {result.name:<{width}} {detail}")
        if index == 0 and new_database is not None:  # right under the configuration's line
            said = f"no database at {new_database}: a run would create a new, empty one"
            click.echo(f"WARN  {'embedded database':<{width}} {said}")
    code = exit_code(error)
    return code or (EXIT_FAILED if any(not r.ok for r in results or []) else EXIT_OK)


async def run_replay(startup: Startup, names: list[str]) -> int:
    runtime = _startup(startup)
    replayable = [
        (i.name, i.connector)
        for i in runtime.integrations
        if isinstance(i.connector, SupportsReplay)
    ]
    if not replayable:
        log.error("replay.unsupported", reason="the configured connector quarantines nothing")
        return EXIT_CONFIG
    moved: list[str] = []
    for name, connector in replayable:
        with structlog.contextvars.bound_contextvars(
            **({"integration": name} if runtime.named else {})
        ):
            moved += await connector.replay(names)
    log.info("replay.done", moved=len(moved))
    return EXIT_OK if not names or len(set(moved)) >= len(set(names)) else EXIT_FAILED


async def run_seed(startup: Startup, if_empty: bool, force: bool) -> int:
    from tracos_sync.seed import seed

    runtime = _startup(startup)
    if runtime.named and len(runtime.integrations) > 1:
        log.error("seed.ambiguous", reason="name the integration to seed with --only NAME")
        return EXIT_CONFIG
    integration = runtime.integrations[0]
    if runtime.named:
        structlog.contextvars.bind_contextvars(integration=integration.name)
    connector = integration.connector
    if not isinstance(connector, SupportsSamples):
        log.error("seed.unsupported", reason="the configured connector takes no sample inputs")
        return EXIT_CONFIG

    async def work() -> SeedResult:
        async with open_database(runtime) as database:
            repository = database.stores(integration).repository
            await repository.prepare()
            return await seed(repository, connector, if_empty, force)

    result, error = await caught(work())
    if result is None or error is not None:
        return exit_code(error)
    if result.refused:
        log.error(
            "seed.refused",
            reason="TracOS or the client side already holds work orders; sample client "
            "inputs could overwrite real ones. Use --if-empty to skip, --force to seed anyway",
        )
        return EXIT_CONFIG
    if result.skipped:
        log.info("seed.skipped", reason="data already present")
    else:
        log.info(
            "seed.done",
            documents=result.documents,
            inputs=result.files,
            database=integration.database,
            collection=integration.collection,
            **connector.describe(),
        )
    return EXIT_OK
