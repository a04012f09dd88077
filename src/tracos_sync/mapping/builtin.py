"""Today's client format, stated as a mapping description: the mapping a customer without a
description of its own gets. Its output is byte for byte what the service always wrote."""

from __future__ import annotations

from functools import cache
from typing import Any

from .compile import compile_mapping
from .record_mapping import RecordMapping

BUILTIN: dict[str, Any] = {
    "fields": {
        "number": "orderNo",
        "title": "summary",
        "created_at": "creationDate",
        "updated_at": "lastUpdateDate",
        "deleted": "isDeleted",
        "deleted_at": "deletedDate",
    },
    "status": {
        "flags": {
            "isCanceled": "cancelled",
            "isDone": "completed",
            "isOnHold": "on_hold",
            "isPending": "pending",
            "isActive": "in_progress",
        },
        "none": "in_progress",
        "optional": ["isActive"],
    },
    "date_format": "iso8601",
    "constants": {"isSynced": True},
    "order": [
        "orderNo",
        "isCanceled",
        "isDone",
        "isOnHold",
        "isPending",
        "isActive",
        "isDeleted",
        "isSynced",
        "summary",
        "creationDate",
        "lastUpdateDate",
        "deletedDate",
    ],
}


@cache
def builtin_mapping(timezone: str = "UTC") -> RecordMapping:
    """The built-in mapping, naive client times read in ``timezone`` (``CLIENT_TIMEZONE``).
    Cached: a mapping is immutable, and building one compiles its schema."""
    return compile_mapping({**BUILTIN, "timezone": timezone}, where="the built-in mapping")
