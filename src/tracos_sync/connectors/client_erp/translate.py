"""Pure, two-way translation between the client ERP's work order and TracOS's, as it was
written by hand before declarative mappings (``tracos_sync.mapping``). The connectors no longer
use it: it is kept as the oracle the built-in mapping is tested against (same bytes out, same
records accepted and refused) and as the baseline of ``bench/mapping.py``.

Client status is five flags; TracOS status is one enum. Inbound, more than one flag set is
ambiguous and refused; no flag set means in progress (``isActive`` may be absent).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from tracos_sync.domain.dates import InvalidDate, format_instant, parse_instant
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, Status, WorkOrder

from .wire import ClientWorkOrder

# Flag name on the wire -> TracOS status. The order is the order of the table in the spec.
FLAG_STATUS: dict[str, Status] = {
    "isCanceled": Status.CANCELLED,
    "isDone": Status.COMPLETED,
    "isOnHold": Status.ON_HOLD,
    "isPending": Status.PENDING,
    "isActive": Status.IN_PROGRESS,
}
STATUS_FLAG: dict[Status, str] = {status: flag for flag, status in FLAG_STATUS.items()}


def status_from_flags(flags: dict[str, bool | None]) -> Status:
    """The one status whose flag is true; none true means in progress. Raises ``ValueError`` on
    more than one."""
    raised = [flag for flag in FLAG_STATUS if flags.get(flag)]
    if len(raised) > 1:
        raise ValueError(f"ambiguous status: {', '.join(raised)} are all true")
    return FLAG_STATUS[raised[0]] if raised else Status.IN_PROGRESS


def flags_from_status(status: Status) -> dict[str, bool]:
    return {flag: flag == STATUS_FLAG[status] for flag in FLAG_STATUS}


def to_tracos(record: ClientWorkOrder, client_tz: tzinfo) -> WorkOrder:
    """Client -> TracOS. Raises ``RecordRejected`` listing every problem found."""
    problems: list[Problem] = []

    def instant(path: str, value: str) -> Any:
        try:
            return parse_instant(value, client_tz)
        except InvalidDate as exc:
            problems.append(Problem(path, str(exc)))
            return None

    status: Status | None = None
    try:
        status = status_from_flags(
            {
                "isCanceled": record.is_canceled,
                "isDone": record.is_done,
                "isOnHold": record.is_on_hold,
                "isPending": record.is_pending,
                "isActive": record.is_active,
            }
        )
    except ValueError as exc:
        problems.append(Problem("$", str(exc)))

    created = instant("$.creationDate", record.creation_date)
    updated = instant("$.lastUpdateDate", record.last_update_date)
    deleted_at = None
    if record.is_deleted:
        # A deleted record without deletedDate was deleted at its last update at the latest.
        deleted_at = (
            instant("$.deletedDate", record.deleted_date)
            if record.deleted_date is not None
            else updated
        )
    elif record.deleted_date is not None:
        # Validate it anyway: a garbage date is a sign of a garbage record.
        instant("$.deletedDate", record.deleted_date)

    if problems or status is None or created is None or updated is None:
        raise RecordRejected(problems)
    return WorkOrder(
        number=record.order_no,
        status=status,
        title=record.summary,
        created_at=created,
        updated_at=updated,
        deleted=record.is_deleted,
        deleted_at=deleted_at,
    )


def to_client(order: WorkOrder) -> dict[str, Any]:
    """TracOS -> client: every client field, dates as ISO 8601 UTC, ``isSynced`` true."""
    return {
        "orderNo": order.number,
        **flags_from_status(order.status),
        "isDeleted": order.deleted,
        "isSynced": True,
        "summary": order.title,
        "creationDate": format_instant(order.created_at),
        "lastUpdateDate": format_instant(order.updated_at),
        # Mirrors inbound: a deleted order without its own deletion date was deleted at its
        # last update; an order that is not deleted has no deletion date.
        "deletedDate": (
            format_instant(order.deleted_at or order.updated_at) if order.deleted else None
        ),
    }
