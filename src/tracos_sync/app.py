"""Bootstrap: the only module that knows the concrete adapters. It reads the configuration,
builds the TracOS repository, the connector state store (on the same MongoDB client, retrier and
write concern) and the configured client connector, and runs the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

import structlog
from bson.codec_options import DatetimeConversion
from pydantic import Field
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError as MongoConfigurationError
from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from tracos_sync import connectors
from tracos_sync.config import Settings, load_settings
from tracos_sync.domain.errors import ConfigurationError, DatabaseUnavailable
from tracos_sync.domain.ports import (
    ClientConnector,
    ConnectorContext,
    HealthCheck,
)
from tracos_sync.embedded import embedded_server
from tracos_sync.logs import redact_text, uri_secrets
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier
from tracos_sync.tracos.state import MongoConnectorStateStore

log = structlog.get_logger("tracos_sync")

Command = Literal["run", "inbound", "outbound"]


class AppSettings(Settings):
    """Core settings plus the service's own: embedded server, watch mode, report, metrics."""

    mongo_embedded_dir: Path = Field(Path(".data/db"))
    watch_interval: float = Field(5.0, gt=0, le=86_400)
    # Wake on the client side's own events (files arriving) as well as at each interval; off for
    # a folder whose events cannot be trusted or do not exist (some network mounts).
    watch_events: bool = True
    report_path: Path | None = None
    metrics_port: int | None = Field(None, ge=1, le=65_535)
    metrics_address: str = "0.0.0.0"
    # Where connectors keep their own state (the HTTP connector: watermark, dead letters).
    client_state_collection: str = Field("client_sync_state", min_length=1, pattern=r"^[^$\x00]+$")
    client_dead_letter_collection: str = Field(
        "client_dead_letters", min_length=1, pattern=r"^[^$\x00]+$"
    )


@dataclass(slots=True)
class Runtime:
    settings: AppSettings
    connector: ClientConnector

    @property
    def secrets(self) -> list[str]:
        """What no output may show: MongoDB credentials, and the connector's."""
        return uri_secrets(self.settings.mongo_uri) + self.connector.secrets()


def load_runtime(env_file: str | None, embedded: bool = False) -> Runtime:
    """Everything that can be checked before touching anything; raises ``ConfigurationError``."""
    settings = load_settings(AppSettings, env_file)
    if embedded:
        settings.mongo_embedded = True
    if not settings.mongo_embedded:
        check_mongo_uri(settings.mongo_uri)
    connector = connectors.load(settings.client_connector)(env_file)
    return Runtime(settings, connector)


def check_mongo_uri(uri: str) -> None:
    try:
        parse_uri(uri)
    except (InvalidURI, MongoConfigurationError, ValueError) as exc:
        reason = redact_text(str(exc), uri_secrets(uri))
        raise ConfigurationError(f"MONGO_URI: {reason}") from None


def mongo_client(uri: str, settings: Settings) -> AsyncMongoClient[dict[str, Any]]:
    # Short per-attempt timeouts (a quarter of the budget, 0.5-5 s): the retry budget
    # (MONGO_RETRY_SECONDS) and its backoff, not one long server selection, wait out an outage.
    attempt_ms = int(max(0.5, min(5.0, settings.mongo_retry_seconds / 4)) * 1000)
    return AsyncMongoClient(
        uri,
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
    """TracOS's side of a process: the repository and the connector state store, sharing one
    MongoDB client (closed with the repository), one retrier and the journaled write concern."""

    repository: MongoWorkOrderRepository
    state: MongoConnectorStateStore


@contextlib.asynccontextmanager
async def open_stores(
    runtime: Runtime,
    dry_run: bool = False,
    log_retries: bool = True,
    retry_seconds: float | None = None,
) -> AsyncIterator[Stores]:
    """``retry_seconds`` overrides ``MONGO_RETRY_SECONDS`` (``check`` answers at once)."""
    settings = runtime.settings
    async with database_uri(settings) as uri:
        client = mongo_client(uri, settings)
        budget = settings.mongo_retry_seconds if retry_seconds is None else retry_seconds
        retrier = Retrier(budget, log_retries=log_retries)
        repository = MongoWorkOrderRepository(
            client,
            settings.mongo_database,
            settings.mongo_collection,
            retrier,
            dry_run=dry_run,
        )
        state = MongoConnectorStateStore(
            client,
            settings.mongo_database,
            settings.client_state_collection,
            settings.client_dead_letter_collection,
            retrier,
        )
        try:
            yield Stores(repository, state)
        finally:
            await repository.close()


@contextlib.asynccontextmanager
async def open_repository(
    runtime: Runtime, dry_run: bool = False, log_retries: bool = True
) -> AsyncIterator[MongoWorkOrderRepository]:
    async with open_stores(runtime, dry_run, log_retries) as stores:
        yield stores.repository


async def check(runtime: Runtime) -> list[HealthCheck]:
    """Everything ``tracos-sync check`` reports, each with ok or not."""
    checks = [HealthCheck("configuration", True, "valid")]
    async with open_stores(runtime, dry_run=True, retry_seconds=0) as stores:
        checks += await stores.repository.health()
        checks += await runtime.connector.health(ConnectorContext(stores.state, dry_run=True))
    return checks
