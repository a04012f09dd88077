"""The click commands: ``tracos-sync [--env-file F] [--integrations F] COMMAND [OPTIONS]``.
Each parses its options and hands them to its runner (``runners``)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import click

from tracos_sync.cli import runners
from tracos_sync.cli.mapping import mapping_group
from tracos_sync.cli.runners import Startup
from tracos_sync.cli.usage import HintingGroup
from tracos_sync.runs import Command
from tracos_sync.stopping import run_bounded

embedded_option = click.option(
    "--embedded",
    is_flag=True,
    default=False,
    help="Start a local SecantusDB server (data in .data/db) instead of using MONGO_URI. "
    "Same as MONGO_EMBEDDED=1.",
)


DEFAULT_ENV_FILE = ".env"  # read when present


@click.group(cls=HintingGroup, context_settings={"help_option_names": ["-h", "--help"]})
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

    Settings come from environment variables or a .env file (docs/reference/settings.md).
    """
    ctx.obj = Startup(env_file or DEFAULT_ENV_FILE, integrations_file)


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
        ctx.exit(run_bounded(runners.run_sync(ctx.obj.with_(embedded, only), command, dry_run)))

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
    ctx.exit(asyncio.run(runners.run_watch(ctx.obj.with_(embedded, only))))


@cli.command("check")
@embedded_option
@only_option
@click.pass_context
def check_command(ctx: click.Context, embedded: bool, only: tuple[str, ...]) -> None:
    """Check configuration, database (reachability, version, indexes), folders and backlogs;
    one line per check, exit 1 if any fails."""
    ctx.exit(asyncio.run(runners.run_check(ctx.obj.with_(embedded, only))))


@cli.command("replay")
@click.argument("names", nargs=-1)
@only_option
@click.pass_context
def replay_command(ctx: click.Context, names: tuple[str, ...], only: tuple[str, ...]) -> None:
    """Move rejected files (all, or the NAMES given, as in rejected/) back into the inbound
    folder for another try, removing their .error.json."""
    ctx.exit(asyncio.run(runners.run_replay(ctx.obj.with_(only=only), list(names))))


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
    if if_empty and force:  # one skips where data is, the other writes over it
        raise click.UsageError("--if-empty and --force contradict each other: give one")
    ctx.exit(asyncio.run(runners.run_seed(ctx.obj.with_(embedded, only), if_empty, force)))


cli.add_command(mapping_group)


def with_default_command(argv: list[str], command: str) -> list[str]:
    """``argv`` with ``command`` inserted when it names none, after the group's own options:
    ``--embedded`` becomes ``run --embedded``, ``--env-file x`` becomes ``--env-file x run``,
    and ``--help`` shows the help of ``command`` (``run --help``), which ``argv`` stands for."""
    if any(arg in cli.commands for arg in argv):
        return argv
    leading: list[str] = []
    rest = list(argv)
    while rest and rest[0] in ("--env-file", "--integrations", "--version"):
        option = rest.pop(0)
        leading.append(option)
        if option == "--version":
            return argv  # the version is the whole program's
        if rest:
            leading.append(rest.pop(0))
    return [*leading, command, *rest]


def main(argv: list[str] | None = None) -> None:
    # A file-size limit must fail the write (EFBIG), not kill the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    cli.main(args=argv, prog_name="tracos-sync")
