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
