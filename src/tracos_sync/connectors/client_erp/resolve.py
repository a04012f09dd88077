"""A connector's record mapping from its configuration alone (``resolve_mapping``; an inline
table or a mapping file's, the time zone from the connector's settings), needing neither a
connector nor a database. Both connector factories and ``tracos-sync mapping test`` go through
it, so that what is tested is what runs."""

from __future__ import annotations

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
