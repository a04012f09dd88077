"""The ports the pipeline drives. Adapters implement them; the pipeline knows nothing else.

A customer system is a ``Connector``: it turns its own inputs into domain ``WorkOrder`` values
(``ClientSource``) and delivers domain work orders in its own format (``ClientSink``). TracOS is
a ``WorkOrderRepository``. A connector that keeps state of its own (a watermark, refused records)
is handed a ``ConnectorStateStore`` by the bootstrap, in a ``ConnectorContext``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import FatalError
from .model import Problem, WorkOrder


@dataclass(slots=True)
class InboundUnit:
    """One unit of client input (a file, an API page) and what decoding it produced.

    ``records`` are the valid work orders in input order; ``problems`` list every refusal.
    ``rejected_records`` counts refused records (an input that cannot be parsed counts as one).
    ``handle`` is private to the source that made the unit. A large input may come as several
    units (parts, in order); only its last one ``ends_input``.
    """

    name: str
    records: list[WorkOrder]
    problems: list[Problem] = field(default_factory=list)
    rejected_records: int = 0
    handle: object = None
    # Where each of ``records`` stood in the input (its record index), when the source knows.
    positions: list[int] | None = None
    ends_input: bool = True

    def refuse(self, position: int, reason: str) -> None:
        """Record ``position`` of ``records`` was refused downstream (TracOS would not store it):
        the unit is quarantined with that reason, its other records stay applied."""
        record = self.records[position]
        index = self.positions[position] if self.positions is not None else None
        self.problems.append(Problem("$", f"orderNo {record.number}: {reason}", record=index))
        self.rejected_records += 1


class ClientSource(Protocol):
    """Where client work orders come from."""

    async def prepare(self) -> None:
        """Check and set up what the source needs (folders, recovery of abandoned claims)."""

    def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        """Claim and decode inputs, grouped so that each group holds about ``max_records``."""

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        """The units' valid records are durably applied: archive them (or quarantine those with
        problems)."""

    async def release(self, units: Sequence[InboundUnit]) -> None:
        """The units were not applied: give them back so that a later run tries again."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class Delivery:
    """What a sink did with a batch: the numbers now durable on the client side, the records it
    refused, those it did not write because the client already holds a newer version of them
    (delivered by an overlapping run), those it left for a later run because something it does
    not control kept it from them for too long (``deferred``; ``deferred_because`` says what,
    once per change of state: empty while it goes on), and the fatal error that stopped it
    part-way, if any. ``superseded_by``: for superseded numbers, the last update of the
    client's copy, where the sink read it."""

    delivered: list[int] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    superseded_by: dict[int, datetime] = field(default_factory=dict)
    deferred: list[int] = field(default_factory=list)
    deferred_because: str = ""
    fatal: FatalError | None = None


class ClientSink(Protocol):
    """Where TracOS work orders go."""

    async def prepare(self) -> None: ...

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        """Deliver each order durably. Never raises for a per-record or I/O failure: reports it."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RefusedOrder:
    """An order TracOS will not store for a reason of its own (text it cannot encode, a
    document over the size limit, an unreadable stored version): quarantined, never retried."""

    position: int  # index in the ``orders`` given to ``apply``
    reason: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    inserted: int = 0
    updated: int = 0
    stale: int = 0
    refused: tuple[RefusedOrder, ...] = ()

    def __add__(self, other: ApplyResult) -> ApplyResult:
        return ApplyResult(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.stale + other.stale,
            self.refused + other.refused,
        )


@dataclass(frozen=True, slots=True)
class PendingExport:
    """A TracOS work order waiting to go out; ``version`` is what the conditional mark checks."""

    order: WorkOrder
    key: object
    version: object


@dataclass(frozen=True, slots=True)
class UnreadableDocument:
    """A TracOS document that cannot be understood: skipped, counted, never marked synced."""

    ref: str
    reason: str


class WorkOrderRepository(Protocol):
    """TracOS storage of work orders."""

    async def prepare(self) -> None:
        """Ensure indexes (unique ``number``; one serving the unsynced query). Called before
        every sweep: raises ``FatalError`` when uniqueness of ``number`` is not guaranteed."""

    async def apply(
        self, orders: Sequence[WorkOrder], synced_at: datetime, not_after: datetime | None = None
    ) -> ApplyResult:
        """Insert new numbers; update existing ones only when ``updated_at`` is strictly newer.

        An order dated after ``not_after`` (now plus the clock-skew allowance) is never written:
        it is stale when TracOS already holds that version or a newer one (a clock stepped back
        must not quarantine what was applied), otherwise refused as dated in the future.

        Orders are applied as if one after the other (a number repeated in ``orders`` is
        compared with its predecessor). Written documents are marked synced at ``synced_at``.
        Durable (journaled) when it returns. Idempotent: applying again counts as stale.
        An order refused for a reason of its own is reported in ``refused`` and the others are
        applied; only infrastructure failures raise.
        """

    def pending(
        self, batch_size: int
    ) -> AsyncGenerator[list[PendingExport | UnreadableDocument], None]:
        """Pages of work orders not synced yet, each page at most ``batch_size``."""

    async def mark_synced(self, exports: Sequence[PendingExport], synced_at: datetime) -> int:
        """Mark exported orders synced, each only if unchanged since read; returns how many."""

    async def health(self) -> list[HealthCheck]:
        """Reachability, version, indexes and the unsynced backlog, one line each."""

    async def holds_work_orders(self) -> bool: ...

    async def seed(self, orders: Sequence[WorkOrder]) -> int:
        """Store sample work orders as TracOS itself writes them (not synced), each number only
        if absent; returns how many were stored."""

    async def oldest_unsynced_age(self) -> float | None:
        """Seconds since the oldest unsynced work order was last updated (None: none waits)."""

    def unsynced_changes(self) -> AsyncIterator[None]:
        """Yields whenever TracOS writes something that may need to go out; raises when the
        store cannot notify (the caller then polls)."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One line of ``tracos-sync check``."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input a connector refused, kept with its reasons so that people can see and fix it.

    ``key`` names the refusal (for example a digest of the payload): recording the same
    ``scope``/``key`` again is the same entry, its count raised and its last time moved."""

    scope: str
    key: str
    direction: str
    ref: str
    problems: Sequence[Problem]
    payload: object


class ConnectorStateStore(Protocol):
    """Small durable state a connector keeps beside TracOS, by key: a watermark, refused records.

    Durable when a write returns (as the repository's writes); transient failures are retried
    within the same budget; an outage past it raises ``DatabaseUnavailable``."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The state document stored under ``key`` (a copy), or ``None``."""

    async def put(self, key: str, state: Mapping[str, Any]) -> None:
        """Store ``state`` under ``key``, replacing what was there."""

    async def dead_letter(self, letter: DeadLetter, at: datetime) -> int:
        """Record a refusal; returns how many times this one (``scope``/``key``) was recorded.
        The entry keeps its first time, the last time (``at``), and the latest ref, problems and
        payload."""

    async def count_dead_letters(self, scope: str) -> int:
        """How many distinct refusals ``scope`` has recorded."""

    def describe(self) -> str:
        """Where the state and the dead letters live, for people (no secrets)."""


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the bootstrap hands a connector with each source, sink or health check: whether this
    is a dry run, and the durable state store (same database client, retries and write concern
    as the TracOS repository)."""

    state: ConnectorStateStore
    dry_run: bool = False
    # How long a sink waits for a lock it shares with other writers (LOCK_TIMEOUT_SECONDS).
    lock_timeout_seconds: float = 10.0
    # How far ahead of this host's clock a client record may be dated (CLIENT_CLOCK_SKEW_SECONDS).
    clock_skew_seconds: float = 300.0


class ClientConnector(Protocol):
    """A customer system: one folder under ``tracos_sync.connectors``, registered as an entry
    point in the ``tracos_sync.connectors`` group whose value is a ``ConnectorFactory``.

    With ``context.dry_run`` the source reads without claiming or archiving anything and the sink
    translates without delivering; neither writes state."""

    def source(self, context: ConnectorContext) -> ClientSource: ...

    def sink(self, context: ConnectorContext) -> ClientSink: ...

    def describe(self) -> dict[str, str]:
        """Where it reads and writes, for logs (no secrets)."""

    def secrets(self) -> list[str]:
        """Values no output may show (tokens, passwords); redacted in every form."""

    async def health(self, context: ConnectorContext) -> list[HealthCheck]:
        """Can it be read and written, and how much input is waiting."""

    def owned(self) -> Owned:
        """What it must not share with another integration (checked at start-up)."""


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


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """What the bootstrap gives a connector factory: the connector's own settings and its record
    mapping, each from an integrations file (a table) or, without one, from the environment
    (``settings`` None: read the environment and ``env_file``; ``mapping`` None: the built-in
    client format). ``where`` starts every configuration error (the file and the integration;
    empty for the environment)."""

    settings: Mapping[str, Any] | None = None
    mapping: Mapping[str, Any] | None = None
    env_file: str | None = ".env"
    where: str = ""
    # Settings whose values came from the environment (``${NAME}``): never shown in an error.
    hidden: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Owned:
    """What a connector takes for its own, which no other integration of the deployment may
    share: folders (by setting name; they may not be the same or nest) and endpoints (by
    setting name; they may not be equal)."""

    folders: Mapping[str, Path] = field(default_factory=dict)
    endpoints: Mapping[str, str] = field(default_factory=dict)


class ConnectorFactory(Protocol):
    def __call__(self, config: ConnectorConfig) -> ClientConnector:
        """Read the connector's own settings and mapping (raising ``ConfigurationError`` naming
        ``config.where`` and the key) and build it."""
