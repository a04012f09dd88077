"""A connector's record mapping from its configuration alone (``resolve_mapping``; an inline
table or a mapping file's, the time zone from the connector's settings), needing neither a
connector nor a database. Both connector factories and ``tracos-sync mapping test`` go through
it, so that what is tested is what runs."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from tracos_sync.config import EnvSettings, TimeZoneName, load_settings, validation_problems
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ConnectorConfig
from tracos_sync.mapping import RecordMapping, load_mapping

ZONE_SETTING = "client_timezone"


class _ZoneTable(BaseModel):
    """The one setting of a connector's table that a mapping needs; the others are the
    connector's to check."""

    model_config = ConfigDict(extra="ignore", strict=True)

    client_timezone: TimeZoneName = "UTC"


class _ZoneEnvironment(EnvSettings):
    client_timezone: TimeZoneName = "UTC"
    """IANA zone of client times without an offset, unless the mapping names its own."""


@dataclass(frozen=True, slots=True)
class NaiveZone:
    """The zone a mapping reads client times without an offset in, and where that comes from
    (said by ``tracos-sync mapping test``: a zone 4 hours off reads every record "ok")."""

    name: str
    origin: str


def naive_zone(config: ConnectorConfig) -> NaiveZone:
    """The zone ``resolve_mapping`` reads naive client times in for ``config``, and why: the
    mapping's own ``timezone``, else the connector's ``client_timezone`` (its settings table;
    the environment's ``CLIENT_TIMEZONE`` only without a table), else UTC."""
    own = config.mapping.get("timezone") if config.mapping is not None else None
    if isinstance(own, str) and own.strip():
        return NaiveZone(own, "the mapping's timezone")
    zone = client_timezone(config)
    if config.settings is None:
        given = ZONE_SETTING in load_settings(_ZoneEnvironment, config.env_file).model_fields_set
        return NaiveZone(zone, "CLIENT_TIMEZONE" if given else "the default: no CLIENT_TIMEZONE")
    if any(key.lower() == ZONE_SETTING for key in config.settings):
        return NaiveZone(zone, f"{config.where or 'the integration'}: settings.client_timezone")
    return NaiveZone(
        zone,
        "the default of an integration without settings.client_timezone (the environment's "
        "CLIENT_TIMEZONE is not read with an integrations file)",
    )


def resolve_mapping(config: ConnectorConfig) -> RecordMapping:
    """The compiled mapping ``config`` describes (None: the built-in one), its zone for client
    times without an offset being the mapping's own ``timezone``, else the connector's
    ``CLIENT_TIMEZONE`` (its settings table, or the environment without one). Raises
    ``ConfigurationError`` starting with ``config.where`` and naming every problem's key."""
    zone = client_timezone(config)
    return load_mapping(config.mapping, where=config.where, default_timezone=zone)


def client_timezone(config: ConnectorConfig) -> str:
    """The connector's ``CLIENT_TIMEZONE``, checked (an unknown zone names its key)."""
    if config.settings is None:
        return load_settings(_ZoneEnvironment, config.env_file).client_timezone
    # Keys are the variable names in any case (``connector_settings`` refuses one given twice).
    key = next((k for k in config.settings if k.lower() == ZONE_SETTING), ZONE_SETTING)
    table = {ZONE_SETTING: config.settings[key]} if key in config.settings else {}
    try:
        return _ZoneTable.model_validate(table).client_timezone
    except ValidationError as exc:
        problems = validation_problems(exc, "settings.", hidden=config.hidden)
        raise ConfigurationError(
            f"{config.where}: " + "; ".join(p.replace(ZONE_SETTING, key, 1) for p in problems)
        ) from None
