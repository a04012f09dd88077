"""Command line: ``tracos-sync run|inbound|outbound|seed``.

Exit codes: 0 the run completed (rejected inputs are reported, not failures); 1 it could not
complete (what was done is kept); 2 bad configuration or usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import click
import structlog

from tracos_sync import logs
from tracos_sync.app import Runtime, check, load_runtime, open_database
from tracos_sync.config import early_log_settings
from tracos_sync.domain.errors import ConfigurationError, FatalError, SyncError
from tracos_sync.domain.ports import SupportsReplay, SupportsSamples
from tracos_sync.logs import redact_text
from tracos_sync.progress import progress_display
from tracos_sync.runs import (
    Command,
    RunOptions,
    RunOutcome,
    describe_error,
    outcomes_for,
    publish,
    run_once,
)
from tracos_sync.seed import SeedResult
from tracos_sync.stopping import Abandoned, stop_on_signals, until_stopped

log = structlog.get_logger("tracos_sync")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
T = TypeVar("T")

embedded_option = click.option(
    "--embedded",
    is_flag=True,
    default=False,
    help="Start a local SecantusDB server (data in .data/db) instead of using MONGO_URI. "
    "Same as MONGO_EMBEDDED=1.",
)


DEFAULT_ENV_FILE = ".env"  # read when present


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--env-file",
    default=None,
    # Named, it must exist: a typo'd name must not silently run on other settings (exit 2).
    type=click.Path(exists=True, dir_okay=False),
    help="Settings file read after the environment (the environment wins). "
    "[default: .env, when there is one]",
)
@click.option(
    "--integrations",
    "integrations_file",
    default=None,
    metavar="FILE",
    help="Integrations file (TOML): the customers to serve, each with its connector, "
    "settings and mapping. Same as INTEGRATIONS_FILE. Without one, the environment defines "
    "a single integration.",
)
@click.version_option(package_name="tracos-sync", prog_name="tracos-sync")
@click.pass_context
def cli(ctx: click.Context, env_file: str | None, integrations_file: str | None) -> None:
    """Keep work orders in sync between TracOS (MongoDB) and customers' ERPs.

    Settings come from environment variables or a .env file; see the README.
    """
    ctx.obj = Startup(env_file or DEFAULT_ENV_FILE, integrations_file)


@dataclass(frozen=True, slots=True)
class Startup:
    """The group's options, and each command's own, for ``_startup``."""

    env_file: str
    integrations_file: str | None = None
    embedded: bool = False
    only: tuple[str, ...] = ()

    def with_(self, embedded: bool = False, only: tuple[str, ...] = ()) -> Startup:
        return Startup(self.env_file, self.integrations_file, embedded, only)


only_option = click.option(
    "--only",
    multiple=True,
    metavar="NAME",
    help="Only the integration of this name (repeat for several); all are still checked.",
)


dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    default=False,
    help="Validate and translate everything and report what would be inserted, updated, "
    "rejected and exported; change nothing (no writes, no file moves).",
)


def _sync_command(command: Command, summary: str) -> Callable[..., None]:
    @embedded_option
    @dry_run_option
    @only_option
    @click.pass_context
    def handler(ctx: click.Context, embedded: bool, dry_run: bool, only: tuple[str, ...]) -> None:
        ctx.exit(asyncio.run(_run_sync(ctx.obj.with_(embedded, only), command, dry_run)))

    handler.__doc__ = summary
    return handler


cli.command("run")(
    _sync_command(
        "run",
        "Sync once: inbound (client files -> TracOS), then outbound (TracOS -> client files).",
    )
)
cli.command("inbound")(
    _sync_command(
        "inbound",
        "Client -> TracOS only: validate each inbound file, upsert newer work orders by number, "
        "archive the file to processed/ or quarantine it in rejected/ with a .error.json reason.",
    )
)
cli.command("outbound")(
    _sync_command(
        "outbound",
        "TracOS -> client only: write each unsynced work order to <outbound>/<number>.json "
        "atomically, then mark it synced if it did not change meanwhile.",
    )
)


@cli.command("watch")
@embedded_option
@only_option
@click.pass_context
def watch_command(ctx: click.Context, embedded: bool, only: tuple[str, ...]) -> None:
    """Sync continuously until SIGINT/SIGTERM: new files within WATCH_INTERVAL seconds, TracOS
    changes at once (change stream) or within WATCH_INTERVAL. Prometheus metrics on
    METRICS_PORT when set."""
    ctx.exit(asyncio.run(_run_watch(ctx.obj.with_(embedded, only))))


@cli.command("check")
@embedded_option
@only_option
@click.pass_context
def check_command(ctx: click.Context, embedded: bool, only: tuple[str, ...]) -> None:
    """Check configuration, database (reachability, version, indexes), folders and backlogs;
    one line per check, exit 1 if any fails."""
    ctx.exit(asyncio.run(_run_check(ctx.obj.with_(embedded, only))))


@cli.command("replay")
@click.argument("names", nargs=-1)
@only_option
@click.pass_context
def replay_command(ctx: click.Context, names: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Move rejected files (all, or the NAMES given, as in rejected/) back into the inbound
    folder for another try, removing their .error.json."""
    ctx.exit(asyncio.run(_run_replay(ctx.obj.with_(only=only), list(names))))


@cli.command("fake-erp")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--token",
    envvar="CLIENT_API_TOKEN",
    default=None,
    help="Require this bearer token (default: CLIENT_API_TOKEN, if set).",
)
@click.option(
    "--sample", default=10, show_default=True, type=int, help="Sample work orders to start with."
)
def fake_erp_command(host: str, port: int, token: str | None, sample: int) -> None:
    """Run a fake client ERP HTTP API (for trying CLIENT_CONNECTOR=http) until Ctrl-C."""
    import time

    from tracos_sync.connectors.client_erp_http.fake_server import fake_erp
    from tracos_sync.mapping import builtin_mapping
    from tracos_sync.seed import client_orders

    with fake_erp(host, port, token) as (url, state):
        for order in client_orders(datetime.now(UTC))[:sample]:
            state.put(builtin_mapping().encode(order))
        click.echo(f"fake ERP at {url} with {len(state.records)} work orders; try:")
        this = sys.argv[0] if sys.argv and sys.argv[0].endswith("tracos-sync") else "tracos-sync"
        click.echo(f"  CLIENT_CONNECTOR=http CLIENT_API_URL={url} {this} run --embedded")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo(f"received {len(state.received)} work orders; bye")


@cli.command("seed")
@click.option(
    "--if-empty",
    is_flag=True,
    help="Do nothing (exit 0) when TracOS or the inbound folder already holds work orders.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write sample data even where work orders already are (sample client files may "
    "then overwrite real work orders of the same numbers on the next run).",
)
@embedded_option
@only_option
@click.pass_context
def seed_command(
    ctx: click.Context, if_empty: bool, force: bool, embedded: bool, only: tuple[str, ...]
) -> None:
    """Write sample data: 10 TracOS work orders and 10 client files (plus two bad files).
    Refuses (exit 2) when data is already there, unless --if-empty or --force."""
    ctx.exit(asyncio.run(_run_seed(ctx.obj.with_(embedded, only), if_empty, force)))


def _startup(startup: Startup, *, checking: bool = False) -> Runtime:
    """Logging as configured (from the first line, a configuration error included), then the
    runtime; a configuration error ends the command with exit 2."""
    logs.configure(*early_log_settings(startup.env_file))
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
    logs.configure(settings.log_level, settings.log_format, runtime.secrets)
    return runtime


def exit_code(error: BaseException | None) -> int:
    """The exit-code policy, in one place; logs the failure once."""
    if error is None:
        return EXIT_OK
    if isinstance(error, ConfigurationError):
        log.error("config.invalid", error=str(error))
        return EXIT_CONFIG
    event = "run.failed" if isinstance(error, SyncError) else "run.crashed"
    log.error(event, error=describe_error(error), exc_info=error)
    return EXIT_FAILED


async def _caught(work: Awaitable[T]) -> tuple[T | None, Exception | None]:
    try:
        return await work, None
    except Exception as exc:
        return None, exc


async def _run_sync(startup: Startup, command: Command, dry_run: bool) -> int:
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
        with contextlib.suppress(Abandoned):  # ``outcomes`` hold what was done by then
            await until_stopped(run_once(runtime, command, options, outcomes), stop)
    if stop.is_set():
        for outcome in outcomes:
            if outcome.completed:  # it had finished when the signal came
                continue
            outcome.error = outcome.error or FatalError(
                "stopped by a signal: the batch in hand was finished (or given back); the "
                "rest is left for the next run"
            )
    code = max(_logged_exit_code(runtime, outcome) for outcome in outcomes)
    reported = publish(runtime, outcomes)
    if any(outcome.status == "partial" for outcome in outcomes):
        code = code or EXIT_FAILED  # work was left for the next run (its line said why)
    return code or (EXIT_OK if reported else EXIT_FAILED)


def _logged_exit_code(runtime: Runtime, outcome: RunOutcome) -> int:
    if not runtime.named:
        return exit_code(outcome.error)
    with structlog.contextvars.bound_contextvars(integration=outcome.integration):
        return exit_code(outcome.error)


async def _run_watch(startup: Startup) -> int:
    from tracos_sync.watch import watch

    runtime = _startup(startup)
    _, error = await _caught(watch(runtime, RunOptions()))
    return exit_code(error)


async def _run_check(startup: Startup) -> int:
    runtime = _startup(startup, checking=True)
    results, error = await _caught(check(runtime))
    width = max([22, *(len(result.name) for result in results or [])])
    for result in results or []:
        detail = redact_text(result.detail, runtime.secrets)
        click.echo(f"{'ok  ' if result.ok else 'FAIL'}  {result.name:<{width}} {detail}")
    code = exit_code(error)
    return code or (EXIT_FAILED if any(not r.ok for r in results or []) else EXIT_OK)


async def _run_replay(startup: Startup, names: list[str]) -> int:
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


async def _run_seed(startup: Startup, if_empty: bool, force: bool) -> int:
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

    result, error = await _caught(work())
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


def with_default_command(argv: list[str], command: str) -> list[str]:
    """``argv`` with ``command`` inserted when it names none, after the group's own options:
    ``--embedded`` becomes ``run --embedded``, ``--env-file x`` becomes ``--env-file x run``."""
    if any(arg in cli.commands for arg in argv):
        return argv
    leading: list[str] = []
    rest = list(argv)
    while rest and rest[0] in ("--env-file", "--integrations", "--help", "-h", "--version"):
        option = rest.pop(0)
        leading.append(option)
        if option in ("--env-file", "--integrations") and rest:
            leading.append(rest.pop(0))
        elif option not in ("--env-file", "--integrations"):
            return argv  # help and version answer for the whole command line
    return [*leading, command, *rest]


def main(argv: list[str] | None = None) -> None:
    # A file-size limit must fail the write (EFBIG), not kill the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    cli.main(args=argv, prog_name="tracos-sync")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
