"""The service's settings: the core ones (``config.Settings``) and the service's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field

from tracos_sync.config import Settings


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
    """The embedded server's data folder (a relative path is taken from the directory the
    command runs in; a new one is announced as `embedded.new_database`)."""
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
