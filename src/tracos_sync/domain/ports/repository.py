"""TracOS storage of work orders (``WorkOrderRepository``) and what its operations return."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..model import WorkOrder

# The longest a store's notification waits before it yields "nothing yet" (``unsynced_changes``).
CHANGE_WAIT_SECONDS = 1.0


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

    def unsynced_changes(self) -> AsyncGenerator[bool, None]:
        """Yields True whenever TracOS writes something that may need to go out, and False
        when a wait of about a second brought nothing: a follower ends between two waits
        instead of being cancelled inside one. Raises when the store cannot notify (the caller
        then polls)."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One line of ``tracos-sync check``. ``warning``: ok, but something to act on soon (a
    certificate about to expire); shown ``WARN``, the exit code unchanged."""

    name: str
    ok: bool
    detail: str
    warning: bool = False
