"""Two integrations never share what is one customer's: a TracOS collection, a folder, an
endpoint. Checked at start-up, before anything is touched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tracos_sync.app.integration import Integration
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.folders import folder_overlap


def refuse_sharing(path: Path, integrations: Sequence[Integration]) -> None:
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
