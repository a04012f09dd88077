"""Bootstrap: the only module that knows the concrete adapters. It reads the configuration,
builds the TracOS repository and the configured client connector, and runs the pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError as MongoConfigurationError
from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from tracos_sync import connectors
from tracos_sync.config import Settings, load_settings
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ClientConnector
from tracos_sync.embedded import embedded_server
from tracos_sync.logs import redact_text, uri_secrets
from tracos_sync.pipeline import (
    ProgressHook,
    RunStats,
    Stopwatch,
    sync_inbound,
    sync_outbound,
)
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier

Command = Literal["run", "inbound", "outbound"]


class AppSettings(Settings):
    """Core settings plus where the embedded server keeps its data."""

    mongo_embedded_dir: Path = Field(Path(".data/db"))


@dataclass(slots=True)
class Runtime:
    settings: AppSettings
    connector: ClientConnector

    @property
    def secrets(self) -> list[str]:
        return uri_secrets(self.settings.mongo_uri)


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
        serverSelectionTimeoutMS=attempt_ms,
        connectTimeoutMS=attempt_ms,
        appname="tracos-sync",
    )


@contextlib.asynccontextmanager
async def database_uri(settings: AppSettings) -> AsyncIterator[str]:
    if settings.mongo_embedded:
        async with embedded_server(settings.mongo_embedded_dir) as uri:
            yield uri
    else:
        yield settings.mongo_uri


@contextlib.asynccontextmanager
async def open_repository(runtime: Runtime) -> AsyncIterator[MongoWorkOrderRepository]:
    settings = runtime.settings
    async with database_uri(settings) as uri:
        client = mongo_client(uri, settings)
        repository = MongoWorkOrderRepository(
            client,
            settings.mongo_database,
            settings.mongo_collection,
            Retrier(settings.mongo_retry_seconds),
        )
        try:
            yield repository
        finally:
            await repository.close()


async def execute(
    runtime: Runtime, command: Command, stats: RunStats, progress: ProgressHook | None = None
) -> None:
    """One sync: inbound then outbound (or one of them). Fills ``stats`` as it goes."""
    clock = Stopwatch()
    batch_size = runtime.settings.batch_size
    hooks: dict[str, Any] = {"progress": progress} if progress is not None else {}
    try:
        async with open_repository(runtime) as repository:
            await repository.prepare()
            if command in ("run", "inbound"):
                source = runtime.connector.source()
                try:
                    await source.prepare()
                    await sync_inbound(source, repository, stats, batch_size, **hooks)
                finally:
                    await source.close()
            if command in ("run", "outbound"):
                sink = runtime.connector.sink()
                try:
                    await sink.prepare()
                    await sync_outbound(repository, sink, stats, batch_size, **hooks)
                finally:
                    await sink.close()
    finally:
        stats.seconds = clock.elapsed()
