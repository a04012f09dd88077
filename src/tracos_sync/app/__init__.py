"""Bootstrap: the only package that knows the concrete adapters. It reads the configuration
(``runtime``, ``settings``, ``sharing``), opens TracOS's MongoDB and builds each integration's
stores on it (``database``), and answers ``check`` (``health``)."""

from tracos_sync.app.database import (
    CONNECTIONS_PER_INTEGRATION,
    Database,
    Stores,
    mongo_client,
    new_embedded_database,
    open_database,
)
from tracos_sync.app.first_contact import first_contact
from tracos_sync.app.health import check
from tracos_sync.app.integration import Integration
from tracos_sync.app.runtime import (
    DEFAULT_INTEGRATION,
    Command,
    Runtime,
    check_mongo_uri,
    load_runtime,
)
from tracos_sync.app.settings import AppSettings

__all__ = [
    "CONNECTIONS_PER_INTEGRATION",
    "DEFAULT_INTEGRATION",
    "AppSettings",
    "Command",
    "Database",
    "Integration",
    "Runtime",
    "Stores",
    "check",
    "check_mongo_uri",
    "first_contact",
    "load_runtime",
    "mongo_client",
    "new_embedded_database",
    "open_database",
]
