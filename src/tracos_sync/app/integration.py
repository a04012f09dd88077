"""One customer system as the runtime holds it: its connector and where in TracOS it syncs."""

from __future__ import annotations

from dataclasses import dataclass

from tracos_sync.connectors.client_erp.trial import Samples
from tracos_sync.domain.ports import ClientConnector


@dataclass(frozen=True, slots=True)
class Integration:
    """One customer system: its connector and where in TracOS it syncs. ``name`` is shown in
    logs, summaries and metrics when the integrations come from a file."""

    name: str
    connector: ClientConnector
    database: str
    collection: str
    state_collection: str
    dead_letter_collection: str
    # The customer's sample files, which ``check`` reads through the mapping; None: none.
    samples: Samples | None = None
