"""Customer systems. Each is a folder here (or in another package) exposing a
``ConnectorFactory``, registered under the ``tracos_sync.connectors`` entry-point group.

Ours are also listed here so that the service runs from a source checkout (``python
src/main.py``) where no entry points are installed, and they win over installed entry points of
the same name: an environment installed before one of ours moved still finds it.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from pydantic_settings import BaseSettings

from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.ports import ConnectorFactory

ENTRY_POINT_GROUP = "tracos_sync.connectors"
BUILT_IN = {
    "files": "tracos_sync.connectors.client_erp.files:create",
    # The present HTTP API, as one description of the ``api`` connector.
    "http": "tracos_sync.connectors.declarative_http.present_api:create",
    "api": "tracos_sync.connectors.declarative_http.connector:create",
}
# Each connector's settings class (the variables it reads), for telling a misspelt variable
# from one of ours; ours listed here too, as ``files`` above, for a source checkout.
SETTINGS_GROUP = "tracos_sync.connector_settings"
BUILT_IN_SETTINGS = {
    "files": "tracos_sync.connectors.client_erp.files.settings:FolderSettings",
    "http": "tracos_sync.connectors.declarative_http.present_settings:HttpSettings",
    "api": "tracos_sync.connectors.declarative_http.settings:ApiSettings",
}


def available() -> dict[str, str]:
    """Connector name -> ``module:factory``."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update(BUILT_IN)
    return found


def load(name: str, where: str = "CLIENT_CONNECTOR") -> ConnectorFactory:
    """The factory of connector ``name``; ``where`` names the setting that chose it."""
    targets = available()
    if name not in targets:
        raise ConfigurationError(
            f"{where}: unknown connector {name!r} (available: {', '.join(sorted(targets))})"
        )
    module_name, _, attribute = targets[name].partition(":")
    factory: ConnectorFactory = getattr(import_module(module_name), attribute)
    return factory


def settings_classes() -> list[type[BaseSettings]]:
    """Every installed connector's settings class. One that cannot be loaded is left out: this
    only names variables, and the connector's own loading reports what is wrong with it."""
    targets = {ep.name: ep.value for ep in entry_points(group=SETTINGS_GROUP)}
    targets.update(BUILT_IN_SETTINGS)
    found: list[type[BaseSettings]] = []
    for target in targets.values():
        module_name, _, attribute = target.partition(":")
        try:
            loaded = getattr(import_module(module_name), attribute)
        except (ImportError, AttributeError):
            continue
        if isinstance(loaded, type) and issubclass(loaded, BaseSettings):
            found.append(loaded)
    return found
