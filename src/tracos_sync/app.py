"""Bootstrap: the only module that knows the concrete adapters. It reads the configuration,
builds the TracOS repository, the connector state store (on the same MongoDB client, retrier and
write concern) and the configured client connector, and runs the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from bson.codec_options import DatetimeConversion
from pydantic import BeforeValidator, Field
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError as MongoConfigurationError
from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from tracos_sync import connectors
from tracos_sync.config import Settings, load_settings
from tracos_sync.domain.errors import ConfigurationError, DatabaseUnavailable
from tracos_sync.domain.ports import (
    ClientConnector,
    ConnectorConfig,
    ConnectorContext,
    HealthCheck,
)
from tracos_sync.embedded import embedded_server
from tracos_sync.folders import folder_overlap
from tracos_sync.integrations import IntegrationEntry, read_integrations
from tracos_sync.logs import redact_text, uri_secrets
from tracos_sync.tracos.repository import MongoWorkOrderRepository, close_client
from tracos_sync.tracos.retry import Retrier
from tracos_sync.tracos.state import MongoConnectorStateStore

log = structlog.get_logger("tracos_sync")

Command = Literal["run", "inbound", "outbound"]
# The one integration the environment defines when there is no integrations file.
DEFAULT_INTEGRATION = "default"


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class AppSettings(Settings):
    """Core settings plus the service's own: embedded server, watch mode, report, metrics, and
    the integrations file (without one, the settings above define a single integration)."""

    # Empty is unset (``INTEGRATIONS_FILE=`` in a .env file, as for every optional setting).
    integrations_file: Annotated[Path | None, BeforeValidator(_empty_is_none)] = None
    """An integrations file (TOML; the same as `--integrations FILE`): several customers in one
    deployment, each with its own connector, settings, TracOS collection and mapping. Unset (or
    empty): the environment defines a single integration."""
    mongo_embedded_dir: Path = Field(Path(".data/db"))
    """The embedded server's data folder."""
    watch_interval: float = Field(5.0, gt=0, le=86_400)
    """Watch mode: seconds between sweeps, the source of truth (events can be lost): a file no event
    announced is taken within this."""
    watch_events: bool = True
    """Watch mode: take a file as it arrives, woken by the inbound folder's file-system events
    (inotify); off, sweep at WATCH_INTERVAL only (a network mount without events)."""
    report_path: Path | None = None
    """Write a JSON report of each run (counts, durations, error) to this file."""
    metrics_port: int | None = Field(None, ge=1, le=65_535)
    """Watch mode: serve Prometheus metrics on this port (`/metrics`)."""
    metrics_address: str = "0.0.0.0"
    """The address the metrics server listens on."""
    # Where connectors keep their own state (the HTTP connector: watermark, dead letters).
    client_state_collection: str = Field("client_sync_state", min_length=1, pattern=r"^[^$\x00]+$")
    """Connectors' own state (the HTTP connector's watermark), in MONGO_DATABASE, written like the
    work orders."""
    client_dead_letter_collection: str = Field(
        "client_dead_letters", min_length=1, pattern=r"^[^$\x00]+$"
    )
    """Records a connector refused (the HTTP connector's dead letters), in MONGO_DATABASE."""


@dataclass(frozen=True, slots=True)
class Integration:
    """One customer system: its connector and where in TracOS it syncs. ``name`` is shown in
    logs, summaries and metrics when the integrations come from a file."""

    name: str
    connector: ClientConnector
    database: str
    collection: str
    state_collection: str
    dead_letter_collection: str


@dataclass(slots=True)
class Runtime:
    settings: AppSettings
    integrations: list[Integration]
    # From an integrations file: each integration's name goes with its logs and summary line.
    # Without one (the environment defines a single integration) logs are as they always were.
    named: bool = False

    @property
    def secrets(self) -> list[str]:
        """What no output may show: MongoDB credentials, and every connector's."""
        found = uri_secrets(self.settings.mongo_uri)
        for integration in self.integrations:
            found += integration.connector.secrets()
        return found


def load_runtime(
    env_file: str | None,
    embedded: bool = False,
    integrations_file: str | None = None,
    only: Sequence[str] = (),
) -> Runtime:
    """Everything that can be checked before touching anything; raises ``ConfigurationError``.
    ``integrations_file`` overrides ``INTEGRATIONS_FILE``; ``only`` keeps the integrations of
    those names (all are loaded and checked all the same)."""
    settings = load_settings(AppSettings, env_file)
    if embedded:
        settings.mongo_embedded = True
    if integrations_file:
        settings.integrations_file = Path(integrations_file)
    if not settings.mongo_embedded:
        check_mongo_uri(settings.mongo_uri)
    if settings.integrations_file is None:
        for variable, collection in (
            ("CLIENT_STATE_COLLECTION", settings.client_state_collection),
            ("CLIENT_DEAD_LETTER_COLLECTION", settings.client_dead_letter_collection),
        ):
            if collection == settings.mongo_collection:
                raise ConfigurationError(
                    f"{variable}: {collection!r} is MONGO_COLLECTION, where the work orders "
                    "are; give it a collection of its own"
                )
        connector = connectors.load(settings.client_connector)(ConnectorConfig(env_file=env_file))
        integrations = [
            Integration(
                DEFAULT_INTEGRATION,
                connector,
                settings.mongo_database,
                settings.mongo_collection,
                settings.client_state_collection,
                settings.client_dead_letter_collection,
            )
        ]
    else:
        if "client_connector" in settings.model_fields_set:
            log.warning(
                "config.ignored",
                variables="CLIENT_CONNECTOR",
                reason="an integrations file is in use: each integration names its own "
                "connector (connector = ..., files when left out)",
            )
        integrations = [
            _integration(entry, settings, env_file)
            for entry in read_integrations(settings.integrations_file, env_file)
        ]
        _refuse_sharing(settings.integrations_file, integrations)
    chosen = _only(integrations, only)
    return Runtime(settings, chosen, named=settings.integrations_file is not None)


def _integration(
    entry: IntegrationEntry, settings: AppSettings, env_file: str | None
) -> Integration:
    factory = connectors.load(entry.connector, f"{entry.where}: connector")
    config = ConnectorConfig(entry.settings, entry.mapping, env_file, entry.where, entry.hidden)
    tracos = entry.tracos
    return Integration(
        entry.name,
        factory(config),
        tracos.database or settings.mongo_database,
        tracos.collection or settings.mongo_collection,
        tracos.state_collection or settings.client_state_collection,
        tracos.dead_letter_collection or settings.client_dead_letter_collection,
    )


def _refuse_sharing(path: Path, integrations: Sequence[Integration]) -> None:
    """Two integrations may not sync one TracOS collection (one customer's order 7 would
    overwrite the other's), nor share a folder or an endpoint."""
    _refuse_shared_collections(path, integrations)
    endpoints: dict[str, str] = {}
    folders: dict[str, Path] = {}
    groups: dict[str, str] = {}
    for integration in integrations:
        name = integration.name
        owned = integration.connector.owned()
        for setting, endpoint in owned.endpoints.items():
            if endpoint in endpoints:
                raise ConfigurationError(
                    f"{path}: integrations {endpoints[endpoint]!r} and {name!r} both use "
                    f"{endpoint} ({setting}); each must have its own"
                )
            endpoints[endpoint] = name
        for setting, folder in owned.folders.items():
            label = f"{setting} of {name!r}"
            folders[label] = folder
            # Against the others' only: its own folders were checked by the connector (which
            # knows which of them may nest).
            groups[label] = name
    overlap = folder_overlap(folders, groups=groups)
    if overlap is not None:
        raise ConfigurationError(f"{path}: {overlap}")


def _refuse_shared_collections(path: Path, integrations: Sequence[Integration]) -> None:
    """Each work-order collection is one integration's, and never anybody's state or dead
    letters (their documents would be exported, their writes break its unique index). State
    collections may be shared: entries are keyed by endpoint. Database names that differ only
    in case are one name to MongoDB, which refuses the second: refused here, at start-up."""
    databases: dict[str, str] = {}
    work: dict[tuple[str, str], str] = {}
    for integration in integrations:
        database = integration.database
        seen = databases.setdefault(database.lower(), database)
        if seen != database:
            raise ConfigurationError(
                f"{path}: integration {integration.name!r}: database {database!r} differs "
                f"from {seen!r} only in case; MongoDB takes them for one name"
            )
        key = (integration.database, integration.collection)
        if key in work:
            raise ConfigurationError(
                f"{path}: integrations {work[key]!r} and {integration.name!r} both sync "
                f"{key[0]}.{key[1]}; give each its own tracos.collection"
            )
        work[key] = integration.name
    for integration in integrations:
        for role, collection in (
            ("state_collection", integration.state_collection),
            ("dead_letter_collection", integration.dead_letter_collection),
        ):
            key = (integration.database, collection)
            if key in work:
                raise ConfigurationError(
                    f"{path}: integration {integration.name!r}: tracos.{role} {key[0]}.{key[1]} "
                    f"holds the work orders of {work[key]!r}; give it a collection of its own"
                )


def _only(integrations: list[Integration], names: Sequence[str]) -> list[Integration]:
    if not names:
        return integrations
    known = {integration.name for integration in integrations}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigurationError(
            f"--only: no integration named {', '.join(map(repr, unknown))} "
            f"(defined: {', '.join(sorted(known))})"
        )
    return [integration for integration in integrations if integration.name in names]


def check_mongo_uri(uri: str) -> None:
    try:
        parse_uri(uri)
    except (InvalidURI, MongoConfigurationError, ValueError) as exc:
        reason = redact_text(str(exc), uri_secrets(uri))
        raise ConfigurationError(f"MONGO_URI: {reason}") from None


# Connections an integration may hold at once in watch mode: its change stream, a sweep's
# reads and writes, a batch's marks beside the next page.
CONNECTIONS_PER_INTEGRATION = 4


def mongo_client(
    uri: str, settings: Settings, integrations: int = 1
) -> AsyncMongoClient[dict[str, Any]]:
    # Short per-attempt timeouts (a quarter of the budget, 0.5-5 s): the retry budget
    # (MONGO_RETRY_SECONDS) and its backoff, not one long server selection, wait out an outage.
    attempt_ms = int(max(0.5, min(5.0, settings.mongo_retry_seconds / 4)) * 1000)
    # The driver's default pool (100) starves a deployment of many integrations, each holding
    # a change stream: more for more, unless the URI says.
    pool: dict[str, Any] = {}
    needed = CONNECTIONS_PER_INTEGRATION * integrations
    given = {key.lower(): value for key, value in parse_uri(uri)["options"].items()}
    if "maxpoolsize" not in given:
        pool["maxPoolSize"] = max(100, needed)
    elif 0 < int(given["maxpoolsize"]) < needed and integrations > 1:
        log.warning(
            "mongo.pool_small",
            max_pool_size=given["maxpoolsize"],
            needed=needed,
            reason=f"{integrations} integrations may hold {CONNECTIONS_PER_INTEGRATION} "
            "connections each in watch mode (a change stream each): some may wait for one; "
            "raise maxPoolSize in MONGO_URI, or leave it out",
        )
    return AsyncMongoClient(
        uri,
        **pool,
        tz_aware=True,
        tzinfo=UTC,
        # One odd document must not fail the page it is in: a date outside Python's range comes
        # back as DatetimeMS (then refused as that document's own problem), and bytes that are
        # not UTF-8 as U+FFFD (the rest of the text is still exported).
        datetime_conversion=DatetimeConversion.DATETIME_AUTO,
        unicode_decode_error_handler="replace",
        serverSelectionTimeoutMS=attempt_ms,
        connectTimeoutMS=attempt_ms,
        # A deadline on every command: one the server holds fails as a (retried) network
        # timeout instead of stalling the run.
        socketTimeoutMS=int(settings.mongo_timeout_seconds * 1000),
        appname="tracos-sync",
    )


@contextlib.asynccontextmanager
async def database_uri(settings: AppSettings) -> AsyncIterator[str]:
    if settings.mongo_embedded:
        async with embedded_server(settings.mongo_embedded_dir) as uri:
            yield uri
        return
    if "mongo_uri" not in settings.model_fields_set:
        await asyncio.to_thread(_refuse_unconfigured_default, settings.mongo_uri)
    yield settings.mongo_uri


def _refuse_unconfigured_default(uri: str) -> None:
    """Nothing configured and nothing listening on the default address: say so at once, with
    the ways out, rather than retrying for the whole budget. (A configured database that is
    down is an outage, and is waited out.)"""
    try:
        with socket.create_connection(("localhost", 27017), timeout=1.0):
            return
    except ConnectionRefusedError:
        raise DatabaseUnavailable(
            f"nothing answers on {uri} and MONGO_URI is not set: set MONGO_URI, start the "
            "embedded local server with --embedded (or MONGO_EMBEDDED=1), or try `make run`"
        ) from None
    except OSError:
        return  # not a plain refusal: let the driver try, within its budget


@dataclass(slots=True)
class Stores:
    """TracOS's side of one integration: the repository and the connector state store."""

    repository: MongoWorkOrderRepository
    state: MongoConnectorStateStore


@dataclass(slots=True)
class Database:
    """TracOS's MongoDB for a process: one client and one retrier (with the journaled write
    concern), shared by every integration's stores, closed by ``open_database``."""

    client: AsyncMongoClient[dict[str, Any]]
    retrier: Retrier
    dry_run: bool = False

    def stores(self, integration: Integration) -> Stores:
        repository = MongoWorkOrderRepository(
            self.client,
            integration.database,
            integration.collection,
            self.retrier,
            dry_run=self.dry_run,
            owns_client=False,
        )
        state = MongoConnectorStateStore(
            self.client,
            integration.database,
            integration.state_collection,
            integration.dead_letter_collection,
            self.retrier,
        )
        return Stores(repository, state)


@contextlib.asynccontextmanager
async def open_database(
    runtime: Runtime,
    dry_run: bool = False,
    log_retries: bool = True,
    retry_seconds: float | None = None,
) -> AsyncIterator[Database]:
    """``retry_seconds`` overrides ``MONGO_RETRY_SECONDS`` (``check`` answers at once)."""
    settings = runtime.settings
    async with database_uri(settings) as uri:
        client = mongo_client(uri, settings, len(runtime.integrations))
        budget = settings.mongo_retry_seconds if retry_seconds is None else retry_seconds
        try:
            yield Database(client, Retrier(budget, log_retries=log_retries), dry_run)
        finally:
            await close_client(client)


async def check(runtime: Runtime) -> list[HealthCheck]:
    """Everything ``tracos-sync check`` reports, each with ok or not; with an integrations file
    each integration's lines start with its name."""
    checks = [HealthCheck("configuration", True, "valid")]

    async def one(database: Database, integration: Integration) -> list[HealthCheck]:
        if runtime.named:  # this task's own context: its log lines only
            structlog.contextvars.bind_contextvars(integration=integration.name)
        stores = database.stores(integration)
        found = await stores.repository.health()
        context = ConnectorContext(
            stores.state,
            dry_run=True,
            lock_timeout_seconds=runtime.settings.lock_timeout_seconds,
            clock_skew_seconds=runtime.settings.client_clock_skew_seconds,
        )
        found += await integration.connector.health(context)
        if runtime.named:
            found = [HealthCheck(f"{integration.name}: {c.name}", c.ok, c.detail) for c in found]
        return found

    async with open_database(runtime, dry_run=True, retry_seconds=0) as database:
        # All at once: a database that does not answer costs one timeout, not one each.
        for found in await asyncio.gather(*(one(database, i) for i in runtime.integrations)):
            checks += found
    return checks
