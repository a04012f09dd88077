"""Test data in the shapes the two systems really use."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

# Every field a TracOS document written by inbound holds (besides _id): nothing else is stored.
TRACOS_FIELDS = frozenset(
    {
        "number",
        "status",
        "title",
        "description",
        "createdAt",
        "updatedAt",
        "deleted",
        "deletedAt",
        "isSynced",
        "syncedAt",
    }
)
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def client_record(number: int, **overrides: Any) -> dict[str, Any]:
    """A client work order as the challenge template writes it (no isActive, no isSynced)."""
    record: dict[str, Any] = {
        "orderNo": number,
        "isCanceled": False,
        "isDeleted": False,
        "isDone": False,
        "isOnHold": False,
        "isPending": True,
        "summary": f"Order {number}",
        "creationDate": "2024-05-01T10:00:00Z",
        "lastUpdateDate": "2024-05-01T12:00:00Z",
        "deletedDate": None,
    }
    record.update(overrides)
    return record


def tracos_doc(number: int, **overrides: Any) -> dict[str, Any]:
    """A TracOS document as TracOS writes it: BSON dates, no isSynced."""
    doc: dict[str, Any] = {
        "number": number,
        "status": "pending",
        "title": f"TracOS order {number}",
        "description": f"Description {number}",
        "createdAt": datetime(2024, 4, 1, 8, 0, tzinfo=UTC),
        "updatedAt": T0,
        "deleted": False,
        "deletedAt": None,
    }
    doc.update(overrides)
    return doc


def write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(value))
    return path


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def aged(path: Path, seconds: float = 600) -> Path:
    """Date ``path`` ``seconds`` back: a file whose writer is long done (a file that does not
    parse and changed within the settle time is left for later, not rejected)."""
    when = path.stat().st_mtime - seconds
    os.utime(path, (when, when))
    return path
