"""The integrations file (TOML): the customers one deployment serves, each an integration with
a name, a connector and its settings, the TracOS collection it syncs with, and a record mapping.

    [[integration]]
    name = "acme"
    connector = "files"                 # or "http", or any registered connector
    tracos = { collection = "acme_workorders" }
    mapping = "mappings/acme.toml"      # or an inline [integration.mapping] table; none: built-in
    [integration.settings]              # the connector's settings, named as its variables
    data_inbound_dir = "data/acme/inbound"
    client_api_token = "${ACME_TOKEN}"  # from the environment (or the .env file)

Deployment-wide settings (MongoDB, logs, watch, metrics, batch size) stay in the environment.
Relative paths are relative to the directory the service runs in, as in the environment. Only
``${NAME}`` in the settings tables is replaced, so that a ``$`` elsewhere means itself.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from tracos_sync.config import CollectionName, DatabaseName, validation_problems
from tracos_sync.domain.errors import ConfigurationError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
NAME_RULE = "lower-case letters, digits, - and _, starting with a letter or digit, 1 to 63 of them"


def _integration_name(name: str) -> str:
    """Said in words, not as the pattern: a name is shown in logs, metrics and ``--only``."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"an integration's name is {NAME_RULE}")
    return name


_REFERENCE = re.compile(r"(?P<escaped>\$\$\{)|\$\{(?P<name>[^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TracosTable(BaseModel):
    """Where in TracOS an integration syncs; each missing name is the deployment's setting."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    database: DatabaseName | None = None
    """The TracOS database; unset: MONGO_DATABASE."""
    collection: CollectionName | None = None
    """The TracOS collection of this integration's work orders; unset: MONGO_COLLECTION. No two
    integrations may share one."""
    state_collection: CollectionName | None = None
    """The connector's own state; unset: CLIENT_STATE_COLLECTION."""
    dead_letter_collection: CollectionName | None = None
    """Records the connector refused; unset: CLIENT_DEAD_LETTER_COLLECTION."""


class IntegrationTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Annotated[
        str, Field(json_schema_extra={"x-rule": NAME_RULE}), AfterValidator(_integration_name)
    ]
    """The integration's name (lower case, digits, `-`, `_`), shown in logs, summaries and metrics
    and chosen by `--only`."""
    connector: str = Field("files", min_length=1)
    """The customer system: a connector's entry-point name (`files`, `http`)."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """The connector's settings, named as its variables (in any case); `${NAME}` is taken from the
    environment, `$${` is a literal `${`. An unknown key is an error."""
    tracos: TracosTable = Field(default_factory=TracosTable)
    """Where in TracOS the integration syncs (`database`, `collection`, `state_collection`,
    `dead_letter_collection`)."""
    mapping: dict[str, Any] | str | None = None
    """The customer's record format: a `[mapping]` table, or the path of a TOML file holding one;
    unset: the built-in mapping."""
    samples: Path | None = None
    """A folder of the customer's sample files (`*.json`): `check` reads each through the mapping
    (as `tracos-sync mapping test` does) and fails naming the sample and record it refuses. Unset:
    no samples are checked."""


class IntegrationsTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    integration: list[IntegrationTable] = Field(min_length=1)
    """One `[[integration]]` table per customer, at least one."""


@dataclass(frozen=True, slots=True)
class IntegrationEntry:
    """One integration as the file describes it, variables replaced and mapping file read."""

    name: str
    connector: str
    settings: Mapping[str, Any]
    tracos: TracosTable
    mapping: Mapping[str, Any] | None
    where: str  # how its configuration errors begin: the file and the integration
    samples: Path | None  # sample client files that ``check`` reads through the mapping
    hidden: frozenset[str]  # settings whose values came from the environment: never shown


def read_integrations(path: Path, env_file: str | None = ".env") -> list[IntegrationEntry]:
    """The integrations of ``path``, or ``ConfigurationError`` naming the file and the key."""
    document = _toml(path, path)
    try:
        table = IntegrationsTable.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(
            f"{path}: " + "; ".join(validation_problems(exc, locate=_locator(document)))
        ) from None
    seen: set[str] = set()
    for item in table.integration:
        if item.name in seen:
            raise ConfigurationError(f"{path}: integration {item.name!r} is defined twice")
        seen.add(item.name)
    variables = _variables(env_file)
    return [_entry(path, item, variables) for item in table.integration]


def _locator(document: Any) -> Callable[[tuple[int | str, ...]], str]:
    """``integration[1].tracos.collection`` as ``integration 'acme': tracos.collection``."""

    def locate(loc: tuple[int | str, ...]) -> str:
        if len(loc) >= 2 and loc[0] == "integration" and isinstance(loc[1], int):
            items = document.get("integration")
            item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
            name = item.get("name") if isinstance(item, dict) else None
            head = f"integration {name!r}" if isinstance(name, str) else f"integration[{loc[1]}]"
            rest = ".".join(str(part) for part in loc[2:])
            return f"{head}: {rest}" if rest else head
        return ".".join(str(part) for part in loc)

    return locate


def _entry(path: Path, item: IntegrationTable, variables: Mapping[str, str]) -> IntegrationEntry:
    where = f"{path}: integration {item.name!r}"
    settings = {
        key: substitute(value, f"{where}: settings.{key}", variables)
        for key, value in item.settings.items()
    }
    hidden = frozenset(
        key.lower()
        for key, value in item.settings.items()
        if isinstance(value, str) and _REFERENCE.search(value)
    )
    mapping: Mapping[str, Any] | None
    if isinstance(item.mapping, str):
        mapping = read_mapping_file(Path(item.mapping), f"{where}: mapping")
        where = f"{where} (mapping file {item.mapping})"
    else:
        mapping = item.mapping
    return IntegrationEntry(
        item.name, item.connector, settings, item.tracos, mapping, where, item.samples, hidden
    )


def read_mapping_file(path: Path, where: str) -> dict[str, Any]:
    """The ``[mapping]`` table of a mapping file (TOML, that table and nothing else), or
    ``ConfigurationError`` starting with ``where``."""
    document = _toml(path, where)
    extra = sorted(set(document) - {"mapping"})
    if extra or not isinstance(document.get("mapping"), dict):
        found = f"; it holds {', '.join(extra)} outside it" if extra else ""
        raise ConfigurationError(
            f"{where}: {path} must hold one [mapping] table and nothing "
            f"else (a key above the first header belongs to no table){found}"
        )
    table: dict[str, Any] = document["mapping"]
    return table


# A TOML file this large is not a configuration: refuse it rather than read it all.
MAX_FILE_BYTES = 1 << 20


def _toml(path: Path, where: object) -> dict[str, Any]:
    """A regular file (not a FIFO, a device or a folder: reading one would hang or never end),
    UTF-8 with or without a byte-order mark, valid TOML."""
    # Absolute in what is said: a relative path is looked for from the working directory,
    # which may not be the one the user has in mind.
    shown = path.absolute()
    try:
        with open(path, "rb", opener=_open_regular) as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read {shown}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigurationError(f"{where}: {shown} is over {MAX_FILE_BYTES:,} bytes")
    try:
        return tomllib.loads(data.decode("utf-8").removeprefix("\ufeff"))
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{where}: {shown} is not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{where}: not valid TOML: {exc}") from None


def _open_regular(name: str, flags: int) -> int:
    # O_NONBLOCK: opening a FIFO with no writer would wait for one.
    fd = os.open(name, flags | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _variables(env_file: str | None) -> dict[str, str]:
    """The environment over the ``.env`` file, as for every other setting."""
    found: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        found.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    found.update(os.environ)
    return found


def substitute(value: Any, where: str, variables: Mapping[str, str]) -> Any:
    """``${NAME}`` replaced by the variable; ``$${`` is a literal ``${``. Anything else in
    ``${…}`` is an error rather than text sent as it is (a token ``${acme-token}`` would go out
    to the API literally)."""
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "${"
        name = match.group("name")
        if not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"{where}: ${{{name}}} is not a variable name (letters, digits and _, not "
                "starting with a digit; write $${ for a literal ${)"
            )
        if name not in variables:
            raise ConfigurationError(f"{where}: ${{{name}}} is not set in the environment")
        return variables[name]

    return _REFERENCE.sub(replace, value)
