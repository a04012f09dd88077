"""S/4HANA's maintenance order (the CAP model in tools/cap-erp) as a mapping and an API
description's ``[write]`` table: what the writer's tests, unit and end to end, share."""

from __future__ import annotations

from typing import Any

from tracos_sync.mapping import RecordMapping, load_mapping

MAPPING: dict[str, Any] = {
    "fields": {
        "number": {"path": "MaintenanceOrder", "width": 12},
        "title": "MaintenanceOrderDesc",
        "deleted": "IsMarkedForDeletion",
        "created_at": {
            "path": "CreationDate",
            "format": "%Y-%m-%d",
            "time": "CreationTime",
            "time_format": "%H:%M:%S",
        },
        "updated_at": "LastChangeDateTime",
    },
    # SAP's processing phase: 0 outstanding, 3 in execution, 4 post-execution, 5 completed; 6 is
    # this model's own for cancelled (S/4HANA says it with a status profile).
    "status": {
        "field": "MaintenanceProcessingPhase",
        "values": {
            "0": "pending",
            "3": "in_progress",
            "4": "on_hold",
            "5": "completed",
            "6": "cancelled",
        },
    },
}

WRITE: dict[str, Any] = {
    "path": "MaintenanceOrder('{number}')",
    "method": "PATCH",
    "create": "MaintenanceOrder",
    "version": {"source": "record", "field": "@odata.etag"},
}

READ: dict[str, Any] = {"path": "MaintenanceOrder", "paging": {"style": "odata_v4"}}


def maintenance_order_mapping() -> RecordMapping:
    return load_mapping(MAPPING, where="maintenance order")


def number(n: int) -> str:
    """SAP's order number of TracOS's ``n``: twelve digits, zero-padded."""
    return f"{n:012d}"
