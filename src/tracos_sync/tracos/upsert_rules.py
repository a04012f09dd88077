"""The rules of inbound writes that need no database: which orders are dated ahead of the
clock, how a batch is split into rounds without a repeated number, what a stored version
holds, and how the server's refusals read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError

from tracos_sync.domain.dates import InvalidDate, coerce_instant, format_instant
from tracos_sync.domain.model import WorkOrder

from .retry import TRANSIENT_CODES

# Keys per $in query: bounded so that a server whose $in is not a hash lookup stays linear.
LOOKUP_CHUNK = 250


class Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = Missing()


# An order and its position in what ``apply`` was given.
Item = tuple[int, WorkOrder]


def dated_ahead(orders: Sequence[WorkOrder], not_after: datetime | None) -> list[Item]:
    if not_after is None:
        return []
    return [(p, order) for p, order in enumerate(orders) if order.updated_at > not_after]


def holds_at_least(stored: Any, value: datetime) -> bool:
    """TracOS's stored ``updatedAt`` is ``value`` or later (False when absent or unreadable)."""
    if stored is MISSING:
        return False
    try:
        return coerce_instant(stored) >= value
    except InvalidDate:
        return False


def future_reason(order: WorkOrder, not_after: datetime | None) -> str:
    assert not_after is not None
    return (
        f"last update {format_instant(order.updated_at)} is in the future (after "
        f"{format_instant(not_after)}, this host's clock plus CLIENT_CLOCK_SKEW_SECONDS): "
        "refused until then"
    )


def rounds(orders: Sequence[WorkOrder], skip: set[int] | None = None) -> list[list[Item]]:
    """Split so that no round repeats a number: round k holds each number's k-th occurrence, so
    applying the rounds in order is the same as applying the orders one by one. ``skip``:
    positions left out."""
    rounds: list[list[Item]] = []
    seen: dict[int, int] = {}
    for position, order in enumerate(orders):
        if skip and position in skip:
            continue
        k = seen.get(order.number, 0)
        seen[order.number] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append((position, order))
    return rounds


def write_errors(exc: BulkWriteError) -> list[dict[str, Any]]:
    """The per-document errors of a bulk write; re-raised (for the retrier) when the failure is
    not the documents' own: a write-concern error, or a transient code."""
    details = exc.details or {}
    errors: list[dict[str, Any]] = details.get("writeErrors", [])
    if details.get("writeConcernErrors") or any(e.get("code") in TRANSIENT_CODES for e in errors):
        raise exc
    return errors


def server_refusal(err: dict[str, Any]) -> str:
    message = str(err.get("errmsg", "refused"))[:200]
    return f"TracOS refused it: {message} (code {err.get('code')})"


def same_instant(stored: Any, value: datetime) -> bool:
    try:
        return coerce_instant(stored) == value
    except InvalidDate:
        return False
