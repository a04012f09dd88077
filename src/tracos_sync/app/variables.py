"""Variables that look like ours and are not: a misspelt one (``MONGO_EMBEDED``) is otherwise
ignored without a word, while the integrations file refuses an unknown key. Each is warned
about once, at start.

Two rules. A near miss of a known name (``difflib``) is a typo wherever it is set. A name that
starts like ours (``MONGO_``, ``DATA_``, ``CLIENT_``...) but is none of ours is one only in the
``.env`` file in use, which is ours: in the process environment ``LOG_``, ``DATA_`` or
``CLIENT_`` may well be another program's.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from dotenv import dotenv_values
from pydantic_settings import BaseSettings

from tracos_sync import connectors
from tracos_sync.app.settings import AppSettings
from tracos_sync.config import file_variable

log = structlog.get_logger("tracos_sync")

# Read outside any settings class: where the local server is (``local_server``).
OTHER_VARIABLES = frozenset({"SECANTUSD_BIN"})
# How close a name must be to one of ours to be taken for a typo of it (MONGO_URL for
# MONGO_URI is 0.89; LOG_DIR for LOG_LEVEL, 0.5, is not one), and to be suggested for one
# that starts like ours (CLIENT_FOO, 0.69 from CLIENT_CONNECTOR, gets none).
NEAR_MISS = 0.85
SUGGESTION = 0.7
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Unknown:
    variable: str
    source: str  # "environment", or the .env file's name
    did_you_mean: str | None


def known_variables(classes: Collection[type[BaseSettings]]) -> frozenset[str]:
    """The variables the settings ``classes`` read, and the others we read."""
    names = {field.upper() for cls in classes for field in cls.model_fields}
    files = {file_variable(name) for name in names} - {None}
    return frozenset(names | {str(name) for name in files} | OTHER_VARIABLES)


def unknown_variables(
    environment: Mapping[str, str],
    dotenv: Mapping[str, object],
    known: Collection[str],
    dotenv_name: str = ".env",
) -> list[Unknown]:
    """The variables of ``environment`` (near misses) and ``dotenv`` (near misses and names
    starting like ours) that are not ``known``; in that order, each name once."""
    ours = sorted(known)
    prefixes = tuple(sorted({name.split("_", 1)[0] + "_" for name in ours if "_" in name}))
    found: dict[str, Unknown] = {}
    for source, names, by_prefix in (
        (dotenv_name, dotenv, True),
        ("environment", environment, False),
    ):
        for name in sorted(names):
            variable = name.upper()
            if variable in known or variable in found:
                continue
            near = difflib.get_close_matches(variable, ours, n=1, cutoff=NEAR_MISS)
            if not near and not (by_prefix and variable.startswith(prefixes)):
                continue
            suggested = near or difflib.get_close_matches(variable, ours, n=1, cutoff=SUGGESTION)
            found[variable] = Unknown(variable, source, suggested[0] if suggested else None)
    return list(found.values())


def warn_unknown_variables(env_file: str | None, integrations_file: str | None) -> None:
    """One ``config.unknown_variable`` line for each variable of the environment or ``env_file``
    that looks like ours and is not. The ``${NAME}`` an integrations file refers to are the
    user's own names, known too."""
    dotenv = dotenv_values(env_file) if env_file and Path(env_file).is_file() else {}
    known = set(known_variables([AppSettings, *connectors.settings_classes()]))
    path = integrations_file or os.environ.get("INTEGRATIONS_FILE")
    path = path or dotenv.get("INTEGRATIONS_FILE")
    if path:
        known |= _referenced(Path(path))
    for unknown in unknown_variables(os.environ, dotenv, known, env_file or ".env"):
        suggestion = {"did_you_mean": unknown.did_you_mean} if unknown.did_you_mean else {}
        log.warning(
            "config.unknown_variable",
            variable=unknown.variable,
            **suggestion,
            source=unknown.source,
            reason="not a tracos-sync setting: it is ignored",
        )


def _referenced(path: Path) -> set[str]:
    """The names an integrations file refers to (``${NAME}``); none if it cannot be read (its
    loading says why)."""
    try:
        # A regular file only: reading a FIFO would wait for a writer.
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return set()
    names = {name.upper() for name in _REFERENCE.findall(text)}
    return names | {f"{name}_FILE" for name in names}  # a secret's file (the _FILE convention)
