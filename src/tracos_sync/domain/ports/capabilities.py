"""What some connectors can do beyond the ``ClientConnector`` port, each a protocol checked
with ``isinstance`` where it is used."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..model import WorkOrder
from .client import InboundUnit


@dataclass(frozen=True, slots=True)
class Backlog:
    """Client inputs waiting to be taken."""

    waiting: int
    oldest_seconds: float | None


@runtime_checkable
class SupportsBacklog(Protocol):
    """A connector that can tell how much client input is waiting (a folder can; an API
    that is paged by date cannot)."""

    async def backlog(self) -> Backlog: ...


@dataclass(frozen=True, slots=True)
class CertificateExpiry:
    """When the client certificate a connector presents expires."""

    seconds_left: float  # negative once expired
    expiring: bool  # within the connector's warning period (or expired)


@runtime_checkable
class SupportsCertificates(Protocol):
    """A connector that presents a client certificate (an HTTPS API that authenticates us by
    X.509), so that its expiry can be watched."""

    def certificate_expiry(self) -> CertificateExpiry | None:
        """Its certificate's expiry now (the file as it is now); None when it has none."""


@runtime_checkable
class SupportsSamples(Protocol):
    """A connector that can be given sample client inputs (``tracos-sync seed``)."""

    async def holds_inputs(self) -> bool:
        """Is any client input waiting already?"""

    async def add_samples(self, orders: Sequence[WorkOrder], broken: Mapping[str, bytes]) -> int:
        """Add ``orders`` as the client would send them (in its own format, one input each) and
        the ``broken`` inputs as they are (by name), none over an existing one; returns how
        many were added."""


@runtime_checkable
class SupportsInputEvents(Protocol):
    """A connector that can tell when new client input may be ready (a folder, through the
    operating system's file events), so that ``watch`` takes it at once rather than at its next
    sweep. Events are hints: they can be lost, and the sweep stays the source of truth."""

    def input_events(self) -> AsyncIterator[None]:
        """Yields once when it starts watching, then whenever input may have become ready to
        take; raises when it cannot watch (the caller then sweeps at its interval)."""


@runtime_checkable
class SupportsFollowing(Protocol):
    """A source that can keep taking input as it arrives (watch mode, under a steady flow)."""

    def following(
        self, max_records: int, seconds: float
    ) -> AsyncGenerator[list[InboundUnit], None]:
        """Like ``batches``, but each next batch gathers what arrives while the consumer applies
        the one before, until the consumer asks for it; for about ``seconds``, after which it
        hands over what it has listed and ends. Ends sooner when asked and nothing arrived."""


@runtime_checkable
class SupportsReplay(Protocol):
    """A connector that quarantines inputs and can put them back for another try."""

    async def replay(self, names: Sequence[str]) -> list[str]:
        """Move quarantined inputs (all when ``names`` is empty) back; return what moved."""
