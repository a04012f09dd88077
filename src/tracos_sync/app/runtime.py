"""Loading the runtime: the settings, then each integration with its connector, everything that
can be checked before anything is touched (a ``ConfigurationError`` otherwise)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError as MongoConfigurationError
from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

from tracos_sync import connectors
from tracos_sync.app.integration import Integration
from tracos_sync.app.settings import AppSettings
from tracos_sync.app.sharing import refuse_sharing
from tracos_sync.config import load_settings
from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.connectors.client_erp.files.folder_watch import FolderWatch
from tracos_sync.connectors.client_erp.resolve import resolve_mapping
from tracos_sync.connectors.client_erp.trial import Samples
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ConnectorConfig, FolderEvents
from tracos_sync.integrations import IntegrationEntry, read_integrations
from tracos_sync.local_server import find_server_binary
from tracos_sync.logs import redact_text, uri_secrets
from tracos_sync.tracos.replica_registry import REGISTRY

log = structlog.get_logger("tracos_sync")

Command = Literal["run", "inbound", "outbound"]
# The one integration the environment defines when there is no integrations file.
DEFAULT_INTEGRATION = "default"


@dataclass(slots=True, weakref_slot=True)  # logging's redaction refers to it weakly
class Runtime:
    settings: AppSettings
    integrations: list[Integration]
    # From an integrations file: each integration's name goes with its logs and summary line.
    # Without one (the environment defines a single integration) logs are as they always were.
    named: bool = False
    # The local server, found while loading (a missing one is a configuration error, told
    # before anything is written); None unless MONGO_EMBEDDED.
    server_binary: str | None = None
    # Whether this process has reached MongoDB once (``first_contact``).
    reached: bool = False

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
    elif "mongo_uri" in settings.model_fields_set:
        # Never its value: the address may carry credentials.
        log.warning(
            "config.ignored",
            variables="MONGO_URI",
            reason="the embedded local server is used (--embedded or MONGO_EMBEDDED), not "
            "MONGO_URI: unset one or the other",
        )
    if settings.report_path is not None:
        check_report_path(settings.report_path)
    # One watch of file events for every folder connector (built only: nothing runs unless
    # ``watch`` follows a folder).
    folder_events = FolderWatch()
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
        config = ConnectorConfig(env_file=env_file, folder_events=folder_events)
        connector = connectors.load(settings.client_connector)(config)
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
            _integration(entry, settings, env_file, folder_events)
            for entry in read_integrations(settings.integrations_file, env_file)
        ]
        refuse_sharing(settings.integrations_file, integrations)
    if settings.leases:
        _refuse_lease_collection(settings, integrations)
    chosen = _only(integrations, only)
    binary = find_server_binary() if settings.mongo_embedded else None
    return Runtime(settings, chosen, settings.integrations_file is not None, binary)


def _integration(
    entry: IntegrationEntry, settings: AppSettings, env_file: str | None, events: FolderEvents
) -> Integration:
    factory = connectors.load(entry.connector, f"{entry.where}: connector")
    config = ConnectorConfig(
        entry.settings, entry.mapping, env_file, entry.where, entry.hidden, events
    )
    tracos = entry.tracos
    samples = None
    if entry.samples is not None:
        samples = Samples(entry.samples, RecordDecoder(resolve_mapping(config)))
    return Integration(
        entry.name,
        factory(config),
        tracos.database or settings.mongo_database,
        tracos.collection or settings.mongo_collection,
        tracos.state_collection or settings.client_state_collection,
        tracos.dead_letter_collection or settings.client_dead_letter_collection,
        samples,
    )


def _refuse_lease_collection(settings: AppSettings, integrations: list[Integration]) -> None:
    """The leases and the registry of replicas get collections of their own: not one an
    integration writes."""
    if settings.lease_collection == REGISTRY:
        raise ConfigurationError(
            f"LEASE_COLLECTION: {REGISTRY!r} is the registry of replicas; give the leases "
            "another collection"
        )
    for integration in integrations:
        if integration.database != settings.mongo_database:
            continue
        for what, collection in (
            ("its work orders", integration.collection),
            ("its connector state", integration.state_collection),
            ("its dead letters", integration.dead_letter_collection),
        ):
            if collection == settings.lease_collection:
                raise ConfigurationError(
                    f"LEASE_COLLECTION: {collection!r} is where integration "
                    f"{integration.name!r} keeps {what}; give the leases a collection of their own"
                )
            if collection == REGISTRY:
                raise ConfigurationError(
                    f"integration {integration.name!r}: {collection!r} is the registry of "
                    f"replicas (LEASES); keep {what} in another collection"
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
    """Whatever the driver refuses in the address (its syntax, its options, credentials it
    cannot use such as a user without a password), found before anything runs or is written;
    the client is built without connecting, and never used."""
    try:
        parse_uri(uri)
        AsyncMongoClient(uri, connect=False)
    except (InvalidURI, MongoConfigurationError, ValueError, TypeError, OSError) as exc:
        reason = redact_text(str(exc), uri_secrets(uri))
        raise ConfigurationError(f"MONGO_URI: {reason}") from None


def check_report_path(path: Path) -> None:
    """REPORT_PATH names a file in a folder that exists and this user may write in: otherwise a
    complete sync would fail at its very end. The folder is not created: a relative path taken
    from the wrong working directory would put reports where nobody looks."""
    where = path.absolute()
    if where.is_dir():
        raise ConfigurationError(f"REPORT_PATH: {where} is a folder; name a file in it")
    folder = where.parent
    if not folder.is_dir():
        raise ConfigurationError(
            f"REPORT_PATH: the folder {folder} does not exist (or is not a folder); create it, "
            "or name a file in an existing folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(f"REPORT_PATH: the folder {folder} is not writable by this user")
