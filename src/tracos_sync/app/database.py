"""TracOS's MongoDB for a process: the client (its timeouts and pool), the embedded server or
the configured address, and each integration's stores on them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import structlog
from bson.codec_options import DatetimeConversion
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.uri_parser import parse_uri

from tracos_sync.app.first_contact import first_contact
from tracos_sync.app.integration import Integration
from tracos_sync.app.runtime import Runtime
from tracos_sync.config import Settings
from tracos_sync.domain.fence import Fence
from tracos_sync.embedded import embedded_server, memory_server
from tracos_sync.tracos.leases import MongoLeaseStore
from tracos_sync.tracos.replica_registry import MongoReplicaRegistry
from tracos_sync.tracos.repository import MongoWorkOrderRepository, close_client
from tracos_sync.tracos.retry import Retrier
from tracos_sync.tracos.state import MongoConnectorStateStore

log = structlog.get_logger("tracos_sync")


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
async def database_uri(runtime: Runtime, create: bool = True) -> AsyncIterator[str]:
    """MONGO_URI, or the embedded server's. ``create`` False (a dry run, ``check``): where
    there is no embedded database yet, an empty one in memory stands in, and nothing is
    created."""
    settings = runtime.settings
    if not settings.mongo_embedded:
        yield settings.mongo_uri
        return
    data_dir = new_embedded_database(runtime)
    if data_dir is not None and not create:
        log.info(
            "embedded.in_memory",
            path=str(data_dir),
            reason="no database there: an empty one in memory stands in, and nothing is "
            "created (a run would create a new, empty one there)",
        )
        async with memory_server(runtime.server_binary) as uri:
            yield uri
        return
    if data_dir is not None:
        _announce_new_database(runtime, data_dir)
    async with embedded_server(
        settings.mongo_embedded_dir.absolute(), binary=runtime.server_binary
    ) as uri:
        yield uri


def new_embedded_database(runtime: Runtime) -> Path | None:
    """The embedded database's absolute folder when it does not exist yet (a run would create
    it), else None (none when MONGO_URI is used)."""
    if not runtime.settings.mongo_embedded:
        return None
    data_dir = runtime.settings.mongo_embedded_dir.absolute()
    return None if data_dir.exists() else data_dir


def _announce_new_database(runtime: Runtime, data_dir: Path) -> None:
    """A new, empty embedded database is said, with its absolute path and the relative data
    folders beside it. Information, not a warning: it is what first use looks like (``make
    run``). Run from the wrong directory, the data folders that are not there either are what
    warns (``folder.created``, from the connector that creates them)."""
    relative = {
        f"{integration.name}: {setting}" if runtime.named else setting: folder.absolute()
        for integration in runtime.integrations
        for setting, folder in integration.connector.owned().folders.items()
        if not folder.is_absolute()
    }
    folders = ", ".join(f"{name}={folder}" for name, folder in relative.items())
    log.info(
        "embedded.new_database",
        path=str(data_dir),
        reason="no embedded database there yet: a new, empty one is created. "
        + (
            f"MONGO_EMBEDDED_DIR is relative to the directory this runs from ({Path.cwd()}); "
            "to use an existing one, run from its project's directory or set "
            "MONGO_EMBEDDED_DIR to its absolute path"
            if not runtime.settings.mongo_embedded_dir.is_absolute()
            else "First use, or MONGO_EMBEDDED_DIR names the wrong folder"
        ),
        **({"relative_folders": folders} if folders else {}),
    )


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
    # Where the leases are (database, collection): LEASES.
    leases_at: tuple[str, str] | None = None

    def stores(self, integration: Integration, fence: Fence | None = None) -> Stores:
        """``fence``: the lease this replica holds on ``integration``; every write of its
        stores is conditional on it. None: no leases in use."""
        repository = MongoWorkOrderRepository(
            self.client,
            integration.database,
            integration.collection,
            self.retrier,
            dry_run=self.dry_run,
            owns_client=False,
            fence=fence,
            leases=self._leases() if fence is not None else None,
        )
        state = MongoConnectorStateStore(
            self.client,
            integration.database,
            integration.state_collection,
            integration.dead_letter_collection,
            self.retrier,
            fence=fence,
            leases=self._leases() if fence is not None else None,
        )
        return Stores(repository, state)

    def _leases(self) -> AsyncCollection[dict[str, Any]]:
        assert self.leases_at is not None, "a fence needs the leases"
        database, collection = self.leases_at
        return self.client[database][collection]

    def lease_store(
        self,
        database: str,
        collection: str,
        ttl: float,
        integrations: Sequence[Integration] = (),
    ) -> MongoLeaseStore:
        """The leases of ``collection``. An operation waits an outage out for a sixth of the
        TTL, an attempt for a third at most: the keeper tries again a third of the TTL later,
        and a lease is lost at its deadline whatever happens. ``integrations``: whose stamped
        collections every take's epoch starts above."""
        retrier = Retrier(ttl / 6, log_retries=False)
        stamped = {
            integration.name: [
                (integration.database, integration.collection),
                (integration.database, integration.state_collection),
                (integration.database, integration.dead_letter_collection),
            ]
            for integration in integrations
        }
        return MongoLeaseStore(self.client, database, collection, retrier, ttl / 3, stamped=stamped)

    def replica_registry(
        self, database: str, collection: str, ttl: float, integrations: Sequence[Integration]
    ) -> MongoReplicaRegistry:
        """Every replica of ``database``, whatever its lease collection (``collection``: this
        replica's), for the TracOS collections ``integrations`` write; timed as the leases."""
        return MongoReplicaRegistry(
            self.client,
            database,
            collection,
            [f"{integration.database}.{integration.collection}" for integration in integrations],
            Retrier(ttl / 6, log_retries=False),
            attempt_seconds=ttl / 3,
        )


@contextlib.asynccontextmanager
async def open_database(
    runtime: Runtime,
    dry_run: bool = False,
    log_retries: bool = True,
    retry_seconds: float | None = None,
    knock: bool = True,
) -> AsyncIterator[Database]:
    """``retry_seconds`` overrides ``MONGO_RETRY_SECONDS`` (``check`` answers at once).
    ``knock``: a refusal at the process's first contact ends it at once (``first_contact``);
    ``check`` reports the database's state as one of its lines instead."""
    settings = runtime.settings
    if knock:
        await first_contact(runtime)
    async with database_uri(runtime, create=not dry_run) as uri:
        client = mongo_client(uri, settings, len(runtime.integrations))
        budget = settings.mongo_retry_seconds if retry_seconds is None else retry_seconds
        try:
            leases_at = (settings.mongo_database, settings.lease_collection)
            yield Database(client, Retrier(budget, log_retries=log_retries), dry_run, leases_at)
        finally:
            await close_client(client)
