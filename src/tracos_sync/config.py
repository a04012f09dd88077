"""Configuration from the environment or a ``.env`` file (the environment wins).

Nothing reads the environment at import time: ``load_settings`` is called by the bootstrap, once,
before anything is touched, and turns every invalid value into one ``ConfigurationError`` that
names the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from dotenv import dotenv_values
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ConnectorConfig
from tracos_sync.secret_text import SecretUnreadable, read_secret_text

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
log = structlog.get_logger("tracos_sync")
# Variables whose value is never shown in an error, and those shown without their user info.
SECRET_WORDS = ("TOKEN", "PASSWORD", "PASSPHRASE", "SECRET")
ADDRESS_WORDS = ("URI", "URL", "PROXY")
SHOWN_CHARS = 80
_USERINFO = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)?.*@", re.IGNORECASE | re.DOTALL)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as UTC)") from exc
    return name


# MongoDB's naming rules, checked here so that a bad name is a configuration error (exit 2)
# rather than a failure of the first command, and said in words rather than as a pattern.
_REFUSED_IN_DATABASE = {
    "/": "/",
    "\\": "\\",
    ".": ".",
    " ": "space",
    '"': '"',
    "$": "$",
    "\0": "NUL",
}


def _database_name(name: str) -> str:
    found = [word for char, word in _REFUSED_IN_DATABASE.items() if char in name]
    if found:
        refused = " ".join(_REFUSED_IN_DATABASE.values())
        raise ValueError(f"a database name cannot hold any of {refused} (found {', '.join(found)})")
    return name


def _collection_name(name: str) -> str:
    found = [word for char, word in (("$", "$"), ("\0", "NUL")) if char in name]
    if found:
        raise ValueError(f"a collection name cannot hold $ or NUL (found {', '.join(found)})")
    if "" in name.split("."):
        raise ValueError(
            "a collection name cannot start or end with a dot, nor hold two dots in a row"
        )
    if name.startswith("system."):
        raise ValueError("system.* collections are MongoDB's own: choose another name")
    return name


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


TimeZoneName = Annotated[str, AfterValidator(_zone)]
# Database names under 64 characters; collection names without $ or NUL, no empty dotted
# part, not system.*.
# ``x-rule``: the rule in words, for the settings reference (the validators say it in errors).
DATABASE_RULE = 'none of / \\ . space " $ NUL'
COLLECTION_RULE = "no $ or NUL, no empty part between dots, not system.*"
DatabaseName = Annotated[
    str,
    Field(min_length=1, max_length=63, json_schema_extra={"x-rule": DATABASE_RULE}),
    AfterValidator(_database_name),
]
CollectionName = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra={"x-rule": COLLECTION_RULE}),
    AfterValidator(_collection_name),
]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]
LogFormat = Annotated[Literal["text", "json"], BeforeValidator(_lower)]


class EnvSettings(BaseSettings):
    """Base for every settings class: upper-case variables, ``.env`` support, strict names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
        # Each field's docstring is its description: the settings reference is generated from it.
        use_attribute_docstrings=True,
    )


class Settings(EnvSettings):
    """Core settings: TracOS (MongoDB) and the run itself. Connectors add their own."""

    mongo_uri: str = Field("mongodb://localhost:27017", min_length=1)
    """TracOS's MongoDB (its credentials are never printed)."""
    mongo_database: DatabaseName = "tractian"
    """The database that holds the work orders."""
    mongo_collection: CollectionName = "workorders"
    """The collection of the work orders."""
    mongo_retry_seconds: float = Field(30.0, ge=0, le=86_400)
    """Time budget for retrying transient MongoDB failures (exponential backoff with jitter) before
    the run gives up with exit 1."""
    # At least 0.1 s: the driver counts in whole milliseconds, and 0 ms is no deadline at all.
    mongo_timeout_seconds: float = Field(10.0, ge=0.1, le=3_600)
    """Deadline of one database command (at least 0.1): one the server holds fails as a timeout,
    retried within the budget."""
    mongo_embedded: bool = False
    """Start the local SecantusDB server instead of using MONGO_URI (the same as `--embedded`)."""
    batch_size: int = Field(1000, ge=1, le=100_000)
    """Records per database round trip, and documents per outbound page."""
    lock_timeout_seconds: float = Field(10.0, ge=0.1, le=3_600)
    """Longest wait (at least 0.1 s) for the outbound folder's lock held by another process (a
    frozen one may never let go), once per run (not per file) and counted in time waited (a pause
    of this process does not count); past it the run's files are deferred (`deferred=`,
    `status=partial`, exit 1) and left for the next run."""
    client_clock_skew_seconds: float = Field(300.0, ge=0, le=86_400)
    """How far ahead of this host's clock a client record's last update may be (every connector): a
    later one is refused (stale when TracOS already holds that version), and a TracOS work order
    dated later is not exported (`skipped`) until its date is fixed."""
    log_level: LogLevel = "INFO"
    """`DEBUG` adds tracebacks and per-file details."""
    log_format: LogFormat = "text"
    """`text`: one readable line per event; `json`: one JSON object per line."""
    client_connector: str = Field("files", min_length=1)
    """Which customer system to talk to: a connector's entry-point name (`files`: JSON folders;
    `http`: the ERP's HTTP API)."""


def file_variable(variable: str) -> str | None:
    """``NAME_FILE`` when the setting ``NAME`` may be given as a mounted file (a secret, or an
    address that may hold credentials); None otherwise."""
    words = (*SECRET_WORDS, *ADDRESS_WORDS)
    return f"{variable}_FILE" if any(word in variable for word in words) else None


def _from_files(cls: type[BaseSettings], env_file: str | None) -> dict[str, str]:
    """The secret settings given as ``NAME_FILE`` (the convention of container images: a file
    Kubernetes or systemd mounts), each the file's content less the whitespace around it; read
    once, at start-up. ``NAME`` and ``NAME_FILE`` both set is an error (which one wins would be
    a guess)."""
    dotenv = dotenv_values(env_file) if env_file is not None and os.path.isfile(env_file) else {}
    given = {key.upper(): value for key, value in {**dotenv, **os.environ}.items()}
    found: dict[str, str] = {}
    for name in cls.model_fields:
        variable = name.upper()
        file_name = file_variable(variable)
        path = given.get(file_name) if file_name else None
        if not path:
            continue
        if given.get(variable) is not None:
            raise ConfigurationError(f"{variable} and {file_name} are both set: give one")
        try:
            found[name] = read_secret_text(Path(path), path)
        except SecretUnreadable as exc:
            raise ConfigurationError(f"{file_name}: {exc}") from None
    return found


def load_settings(cls: type[SettingsT], env_file: str | None = ".env") -> SettingsT:
    """Build ``cls`` from the environment (and ``env_file``; a secret ``NAME`` also from the
    file ``NAME_FILE`` names), or raise ``ConfigurationError``."""
    try:
        files: dict[str, Any] = _from_files(cls, env_file)
        # Given as init values (they win over the environment, where NAME is then unset).
        settings: SettingsT = cast(Any, cls)(_env_file=env_file, **files)
        return settings
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            if not err["loc"]:  # a rule across settings: its message names them
                lines.append(str(err["msg"]).removeprefix("Value error, "))
                continue
            variable = str(err["loc"][0]).upper()
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{variable}: {message}{shown_value(variable, err.get('input'))}")
        raise ConfigurationError("invalid configuration: " + "; ".join(lines)) from None


def connector_settings(cls: type[SettingsT], config: ConnectorConfig) -> SettingsT:
    """A connector's settings: from the environment when ``config.settings`` is None, otherwise
    from that table alone (keys are the variable names, in any case; an unknown key is an error,
    as a typo must not pass unseen). Raises ``ConfigurationError`` naming ``config.where``."""
    if config.settings is None:
        return load_settings(cls, config.env_file)
    _warn_ignored(cls, config.env_file)
    values: dict[str, Any] = {}
    problems = []
    for key, value in config.settings.items():
        name = key.lower()
        if name not in cls.model_fields:
            known = ", ".join(sorted(cls.model_fields))
            problems.append(f"settings.{key}: unknown setting (known: {known})")
        elif name in values:
            problems.append(f"settings.{key}: given twice (names are not case-sensitive)")
        values[name] = value
    if not problems:
        try:
            settings: SettingsT = _table_only(cls)(**values)
            return settings
        except ValidationError as exc:
            problems += validation_problems(exc, "settings.", hidden=config.hidden)
    raise ConfigurationError(f"{config.where}: " + "; ".join(problems))


def _warn_ignored(cls: type[BaseSettings], env_file: str | None) -> None:
    """Variables of this connector set in the environment (or ``.env``) while an integrations
    file is used: they are ignored, which someone moving to the file may not expect (a
    ``CLIENT_TIMEZONE`` left behind would shift every naive time). Said once per process."""
    names = {name.upper() for name in cls.model_fields}
    found = {key.upper() for key in os.environ}
    if env_file is not None and os.path.isfile(env_file):
        found |= {key.upper() for key in dotenv_values(env_file)}
    ignored = tuple(sorted(names & found))
    if ignored:
        _warn_once(ignored)


@cache
def _warn_once(ignored: tuple[str, ...]) -> None:
    log.warning(
        "config.ignored",
        variables=", ".join(ignored),
        reason="an integrations file is in use: each integration's settings come from its "
        "own table (settings.*), not from the environment",
    )


@cache
def _table_only(cls: type[SettingsT]) -> type[SettingsT]:
    """``cls`` reading nothing but the values it is given: an integration's settings are its
    table's, never the environment's (which would give every integration the same folders)."""

    class FromTable(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    FromTable.__name__ = FromTable.__qualname__ = cls.__name__
    return FromTable


def validation_problems(
    exc: ValidationError,
    prefix: str = "",
    locate: Callable[[tuple[int | str, ...]], str] | None = None,
    hidden: Collection[str] = (),
) -> list[str]:
    """One line per error of a table's validation, each naming its key path: ``prefix`` then
    the dotted path, or what ``locate`` makes of it. The values of ``hidden`` keys are never
    shown."""
    lines = []
    for err in exc.errors():
        if not err["loc"]:  # a rule across keys: its message names them
            lines.append(str(err["msg"]).removeprefix("Value error, "))
            continue
        path = prefix + (
            locate(err["loc"]) if locate else ".".join(str(part) for part in err["loc"])
        )
        key = str(err["loc"][-1])
        shown = "" if key in hidden else shown_value(key.upper(), err.get("input"))
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{path}: {message}{shown}")
    return lines


class _LogSettings(EnvSettings):
    log_level: str = "INFO"
    log_format: str = "text"


def early_log_settings(env_file: str | None = ".env") -> tuple[str, str]:
    """Log level and format as configured, read before (and whatever the fate of) the full
    configuration, so that its own errors are logged as asked; invalid values fall back to the
    defaults here and are reported by ``load_settings``."""
    try:
        found = load_settings(_LogSettings, env_file)
    except ConfigurationError:
        return "INFO", "text"
    level = found.log_level.strip().upper()
    fmt = found.log_format.strip().lower()
    return (
        level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO",
        fmt if fmt in ("text", "json") else "text",
    )


def shown_value(variable: str, value: object) -> str:
    """`` (got …)`` for an error message: nothing for a secret; an address without its user
    info (everything up to its last ``@``, so a password never shows, however long) and without
    its query; removed before the value is cut to ``SHOWN_CHARS``."""
    if any(word in variable for word in SECRET_WORDS):
        return ""
    if isinstance(value, str) and any(word in variable for word in ADDRESS_WORDS):
        value = _USERINFO.sub(lambda m: f"{m.group('scheme') or ''}***@", value)
        # A query may carry a key (``?apikey=…``), a fragment anything: neither is shown.
        value = re.sub(r"[?#].*", "?***", value, flags=re.DOTALL)
    text = repr(value)
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 1] + "…"
    return f" (got {text})"
