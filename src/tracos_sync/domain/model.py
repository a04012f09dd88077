"""The work order as TracOS understands it, independent of any storage or client format."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Status(enum.StrEnum):
    """TracOS work-order status: a closed enum."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """One work order, business-keyed by ``number``.

    Every datetime is timezone-aware UTC at millisecond precision (see ``dates.normalise``).
    ``description`` is ``None`` when the source does not own it (client records): TracOS then
    keeps its own, or takes the title on insert. ``deleted`` is ``None`` likewise (a client
    format that cannot say whether an order is deleted): TracOS keeps its own, or "not deleted"
    on insert.
    """

    number: int
    status: Status
    title: str
    created_at: datetime
    updated_at: datetime
    # None: the source does not say (a client format without deletion): TracOS keeps its own.
    deleted: bool | None = False
    deleted_at: datetime | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a record (or a whole input) was refused: where, and a readable reason."""

    path: str
    reason: str
    record: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"record": self.record, "path": self.path, "reason": self.reason}
