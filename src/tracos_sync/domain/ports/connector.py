"""A customer system as a whole (``ClientConnector``): how it is built from its configuration
(``ConnectorFactory``), what the bootstrap hands it (``ConnectorContext``, with a
``ConnectorStateStore``), and what it must not share with another integration (``Owned``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..model import Problem
from .client import ClientSink, ClientSource
from .repository import HealthCheck


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input a connector refused, kept with its reasons so that people can see and fix it.

    ``key`` names the refusal (for example a digest of the payload): recording the same
    ``scope``/``key`` again is the same entry, its count raised and its last time moved."""

    scope: str
    key: str
    direction: str
    ref: str
    problems: Sequence[Problem]
    payload: object


class ConnectorStateStore(Protocol):
    """Small durable state a connector keeps beside TracOS, by key: a watermark, refused records.

    Durable when a write returns (as the repository's writes); transient failures are retried
    within the same budget; an outage past it raises ``DatabaseUnavailable``."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The state document stored under ``key`` (a copy), or ``None``."""

    async def put(self, key: str, state: Mapping[str, Any]) -> None:
        """Store ``state`` under ``key``, replacing what was there."""

    async def dead_letter(self, letter: DeadLetter, at: datetime) -> int:
        """Record a refusal; returns how many times this one (``scope``/``key``) was recorded.
        The entry keeps its first time, the last time (``at``), and the latest ref, problems and
        payload."""

    async def count_dead_letters(self, scope: str) -> int:
        """How many distinct refusals ``scope`` has recorded."""

    def describe(self) -> str:
        """Where the state and the dead letters live, for people (no secrets)."""


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the bootstrap hands a connector with each source, sink or health check: whether this
    is a dry run, and the durable state store (same database client, retries and write concern
    as the TracOS repository)."""

    state: ConnectorStateStore
    dry_run: bool = False
    # How long a sink waits for a lock it shares with other writers (LOCK_TIMEOUT_SECONDS).
    lock_timeout_seconds: float = 10.0
    # How far ahead of this host's clock a client record may be dated (CLIENT_CLOCK_SKEW_SECONDS).
    clock_skew_seconds: float = 300.0


class ClientConnector(Protocol):
    """A customer system: one folder under ``tracos_sync.connectors``, registered as an entry
    point in the ``tracos_sync.connectors`` group whose value is a ``ConnectorFactory``.

    With ``context.dry_run`` the source reads without claiming or archiving anything and the sink
    translates without delivering; neither writes state."""

    def source(self, context: ConnectorContext) -> ClientSource: ...

    def sink(self, context: ConnectorContext) -> ClientSink: ...

    def describe(self) -> dict[str, str]:
        """Where it reads and writes, for logs (no secrets)."""

    def secrets(self) -> list[str]:
        """Values no output may show (tokens, passwords); redacted in every form."""

    async def health(self, context: ConnectorContext) -> list[HealthCheck]:
        """Can it be read and written, and how much input is waiting."""

    def owned(self) -> Owned:
        """What it must not share with another integration (checked at start-up)."""


class FolderEvents(Protocol):
    """The operating system's file events of folders on this host, shared by every connector
    of a process (one watch whatever the number of folders)."""

    def ready_files(self, folder: Path, min_age_seconds: float) -> AsyncIterator[None]:
        """Yields once when ``folder`` is watched, then each time a file in it may have become
        ready to take (at once, or ``min_age_seconds`` after its last change); raises
        ``OSError`` when it cannot be watched (any more)."""


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """What the bootstrap gives a connector factory: the connector's own settings and its record
    mapping, each from an integrations file (a table) or, without one, from the environment
    (``settings`` None: read the environment and ``env_file``; ``mapping`` None: the built-in
    client format). ``where`` starts every configuration error (the file and the integration;
    empty for the environment)."""

    settings: Mapping[str, Any] | None = None
    mapping: Mapping[str, Any] | None = None
    env_file: str | None = ".env"
    where: str = ""
    # Settings whose values came from the environment (``${NAME}``): never shown in an error.
    hidden: frozenset[str] = frozenset()
    # The file events of this host's folders, one watch for every connector of the process;
    # None: a connector that follows a folder watches it on its own.
    folder_events: FolderEvents | None = None


@dataclass(frozen=True, slots=True)
class Owned:
    """What a connector takes for its own, which no other integration of the deployment may
    share: folders (by setting name; they may not be the same or nest) and endpoints (by
    setting name; they may not be equal)."""

    folders: Mapping[str, Path] = field(default_factory=dict)
    endpoints: Mapping[str, str] = field(default_factory=dict)


class ConnectorFactory(Protocol):
    def __call__(self, config: ConnectorConfig) -> ClientConnector:
        """Read the connector's own settings and mapping (raising ``ConfigurationError`` naming
        ``config.where`` and the key) and build it."""
