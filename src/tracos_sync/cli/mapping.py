"""The ``mapping`` commands (``tracos-sync mapping test|schema``): a record mapping tried on the
customer's sample files, or its client record's JSON Schema printed, before it goes live. No
database and no connector: the mapping is resolved from its file (or an integration's entry)
exactly as a connector resolves it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import click
import orjson
from pydantic import BeforeValidator

from tracos_sync import logs
from tracos_sync.cli.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from tracos_sync.cli.runners import Startup
from tracos_sync.cli.trial_report import print_config_error, print_trials, trials_json
from tracos_sync.cli.usage import HintingGroup
from tracos_sync.config import EnvSettings, early_log_settings, load_settings
from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.connectors.client_erp.resolve import naive_zone, resolve_mapping
from tracos_sync.connectors.client_erp.trial import sample_files, try_samples
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ConnectorConfig
from tracos_sync.integrations import read_integrations, read_mapping_file
from tracos_sync.mapping import RecordMapping


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class _IntegrationsSetting(EnvSettings):
    integrations_file: Annotated[Path | None, BeforeValidator(_empty_is_none)] = None
    """The integrations file, when ``--integrations`` names none."""


integration_option = click.option(
    "--integration",
    "integration",
    default=None,
    metavar="NAME",
    help="Take the mapping of this integration of the integrations file (--integrations FILE "
    "before the command, or INTEGRATIONS_FILE) instead of a MAPPING file.",
)


@click.group("mapping", cls=HintingGroup)
def mapping_group() -> None:
    """Try a record mapping before it goes live: on sample files (test), or print its JSON
    Schema (schema). No database needed."""


@mapping_group.command("test")
@click.argument("arguments", nargs=-1, required=True, metavar="[MAPPING] SAMPLE...")
@integration_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for tools.")
@click.pass_context
def test_command(
    ctx: click.Context, arguments: tuple[str, ...], integration: str | None, as_json: bool
) -> None:
    """Read each record of each SAMPLE (a file, or a folder's *.json) through MAPPING (a TOML
    file holding a [mapping] table) as inbound would: every problem of a refused record, the
    TracOS work order of an accepted one, the record outbound would write back, and each path
    where that differs from the sample. Exit 1 when a record is refused, 2 for a bad mapping."""
    mapping_file, samples = _split(arguments, integration)
    if not samples:
        raise click.UsageError("name at least one SAMPLE file", ctx)
    config = _config_or_exit(ctx.obj, mapping_file, integration)
    mapping = _mapping(config)
    zone = naive_zone(config)
    paths = sample_files(Path(sample) for sample in samples)
    trials = try_samples(RecordDecoder(mapping), paths)
    if as_json:
        report = trials_json(trials, zone)
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print_trials(trials, len(paths), zone)
    ctx.exit(EXIT_FAILED if any(trial.refused for trial in trials) else EXIT_OK)


@mapping_group.command("schema")
@click.argument("mapping_file", required=False, metavar="[MAPPING]")
@integration_option
@click.pass_context
def schema_command(ctx: click.Context, mapping_file: str | None, integration: str | None) -> None:
    """Print the JSON Schema of the client record MAPPING describes (what inbound checks a
    record against first). Exit 2 for a bad mapping."""
    mapping = _mapping(_config_or_exit(ctx.obj, mapping_file, integration))
    click.echo(orjson.dumps(mapping.json_schema(), option=orjson.OPT_INDENT_2).decode())


def _split(arguments: Sequence[str], integration: str | None) -> tuple[str | None, list[str]]:
    """(the MAPPING file, the SAMPLEs): with ``--integration`` every argument is a sample."""
    if integration is not None:
        return None, list(arguments)
    return arguments[0], list(arguments[1:])


def _config_or_exit(
    startup: Startup, mapping_file: str | None, integration: str | None
) -> ConnectorConfig:
    """The configuration of a file's or an integration's mapping; a configuration error ends
    the command with exit 2, every problem on a line of its own."""
    logs.configure(*early_log_settings(startup.env_file))
    try:
        return _config(startup, mapping_file, integration)
    except ConfigurationError as exc:
        print_config_error(exc)
        raise click.exceptions.Exit(EXIT_CONFIG) from None


def _mapping(config: ConnectorConfig) -> RecordMapping:
    """The mapping, resolved as its connector would resolve it (exit 2 for a bad one)."""
    try:
        return resolve_mapping(config)
    except ConfigurationError as exc:
        print_config_error(exc)
        raise click.exceptions.Exit(EXIT_CONFIG) from None


def _config(startup: Startup, mapping_file: str | None, integration: str | None) -> ConnectorConfig:
    if integration is None:
        if mapping_file is None:
            raise click.UsageError("name a MAPPING file, or --integration NAME")
        table = read_mapping_file(Path(mapping_file), mapping_file)
        # A mapping runs only in an integration of an integrations file, which never reads the
        # environment's CLIENT_TIMEZONE: tested alone, it is an integration that sets none.
        return ConnectorConfig({}, table, startup.env_file, mapping_file)
    if mapping_file is not None:
        raise click.UsageError("name a MAPPING file or --integration NAME, not both")
    found = (
        startup.integrations_file
        or load_settings(_IntegrationsSetting, startup.env_file).integrations_file
    )
    if found is None:
        raise ConfigurationError(
            "--integration: no integrations file (--integrations FILE before the command, or "
            "INTEGRATIONS_FILE)"
        )
    entries = {entry.name: entry for entry in read_integrations(Path(found), startup.env_file)}
    entry = entries.get(integration)
    if entry is None:
        raise ConfigurationError(
            f"--integration: no integration named {integration!r} in {found} "
            f"(defined: {', '.join(sorted(entries))})"
        )
    return ConnectorConfig(
        entry.settings, entry.mapping, startup.env_file, entry.where, entry.hidden
    )
