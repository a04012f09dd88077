"""The service's settings: the core ones (``config.Settings``) and the service's own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field

from tracos_sync.config import CollectionName, Settings


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
    """The embedded server's data folder (a relative path is relative to the working directory;
    a new one is announced as `embedded.new_database`; a dry run and `check` create none)."""
    # At least 0.1 s: an idle watch sweeps at this pace, and a nanosecond kept a core busy.
    watch_interval: float = Field(5.0, ge=0.1, le=86_400)
    """Watch mode: seconds between sweeps (at least 0.1), the source of truth (events can be lost):
    a file no event announced is taken within this."""
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
    client_state_collection: CollectionName = "client_sync_state"
    """Connectors' own state (the HTTP connector's watermark), in MONGO_DATABASE, written like the
    work orders."""
    client_dead_letter_collection: CollectionName = "client_dead_letters"
    """Records a connector refused (the HTTP connector's dead letters), in MONGO_DATABASE."""
    leases: bool = False
    """Watch mode: share the integrations among replicas through leases in TracOS's MongoDB (a
    lease document per integration, in LEASE_COLLECTION): each replica serves only the
    integrations whose lease it holds, at most its fair share, and takes over those of a replica
    that died or froze once their lease expires. Off: every instance serves every integration."""
    lease_seconds: float = Field(15.0, ge=1, le=3600)
    """How long a lease lasts without renewal (seconds, by MongoDB's clock): it is renewed every
    third of this, and an integration of a replica that died or froze is taken over within two
    of these. The same on every replica: replicas that differ are said, and fail ``check``."""
    lease_collection: CollectionName = "sync_leases"
    """The leases and the replicas' heartbeats, in MONGO_DATABASE. The same on every replica: one
    whose LEASE_COLLECTION differs from that of replicas already serving the same TracOS
    collections serves nothing and says so (``lease.collection_conflict``; ``check`` FAILs).
    Not ``sync_replicas``: the registry of every replica, whatever its LEASE_COLLECTION."""
