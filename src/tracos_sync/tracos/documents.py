"""Pure mapping between TracOS's MongoDB documents and the domain ``WorkOrder``.

Documents written by others may hold dates as BSON dates or as ISO 8601 strings, and may lack
``isSynced``; both are read. A document that cannot be understood raises
``UnreadableDocumentError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import bson

from tracos_sync.domain.dates import InvalidDate, coerce_instant
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.text import text_problem

# The fields outbound exports, read raw: the mark is conditional on every one of them still
# holding what was read (an edit that keeps updatedAt must not be marked as delivered).
EXPORTED_FIELDS = (
    "number",
    "status",
    "title",
    "description",
    "createdAt",
    "updatedAt",
    "deleted",
    "deletedAt",
)
# What outbound needs of a document; nothing else is fetched (isSynced: to report odd values).
EXPORT_PROJECTION = dict.fromkeys((*EXPORTED_FIELDS, "isSynced"), 1)


def as_exported(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A filter matching ``doc`` only while every exported field holds the value read (``$eq``:
    a stored value that looks like an operator is compared, not run; absent stays absent)."""
    return {
        name: {"$eq": doc[name]} if name in doc else {"$exists": False} for name in EXPORTED_FIELDS
    }


def odd_is_synced(doc: Mapping[str, Any]) -> bool:
    """``isSynced`` holds something other than true, false or nothing (0, "false", 1, "yes"):
    such a document is not synced (only boolean true is), and is reported."""
    value = doc.get("isSynced")
    return value is not None and not isinstance(value, bool)


# MongoDB's limit on one document (mongod's maxBsonObjectSize).
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
# Below this many characters of text a document cannot come near the limit (4 bytes a character
# at most, title and description both): the exact size is computed only above it.
_SIZE_CHECK_CHARS = 1024 * 1024


class UnreadableDocumentError(ValueError):
    """A TracOS document that does not describe a valid work order."""


def storage_problem(order: WorkOrder) -> str | None:
    """Why TracOS cannot store ``order`` as a document, or None (the common case, cheaply)."""
    problem = text_problem(order.title)
    if problem is not None:
        return f"title: {problem}"
    if len(order.title) * 2 > _SIZE_CHECK_CHARS:
        size = len(bson.encode(insert_document(order, order.updated_at)))
        if size > MAX_DOCUMENT_BYTES:
            return (
                f"the document would be {size:,} bytes, over MongoDB's limit of "
                f"{MAX_DOCUMENT_BYTES:,} (the summary is stored as title and description)"
            )
    return None


def insert_document(order: WorkOrder, synced_at: datetime) -> dict[str, Any]:
    """A new TracOS document. ``description`` starts as the title: after that it is TracOS's."""
    return {
        "number": order.number,
        "createdAt": order.created_at,
        "description": order.description if order.description is not None else order.title,
        "deleted": False,
        "deletedAt": None,
        **update_fields(order, synced_at),
    }


def native_document(order: WorkOrder) -> dict[str, Any]:
    """A document as TracOS itself writes one: no ``isSynced``, so it is waiting to go out."""
    doc = insert_document(order, order.updated_at)
    del doc["isSynced"], doc["syncedAt"]
    return doc


def update_fields(order: WorkOrder, synced_at: datetime) -> dict[str, Any]:
    """What an inbound update sets: never ``createdAt`` or ``description``, nor the deletion
    when the source does not say (``deleted`` None). Marked synced so that what came from the
    client does not echo back to it."""
    fields: dict[str, Any] = {
        "status": order.status.value,
        "title": order.title,
        "updatedAt": order.updated_at,
    }
    if order.deleted is not None:
        fields["deleted"] = order.deleted
        fields["deletedAt"] = order.deleted_at if order.deleted else None
    return fields | {"isSynced": True, "syncedAt": synced_at}


def read_document(doc: Mapping[str, Any]) -> WorkOrder:
    """Domain work order from a TracOS document, or ``UnreadableDocumentError`` saying why."""
    number = doc.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise UnreadableDocumentError(f"number must be a positive integer, got {number!r:.40}")
    try:
        status = Status(str(doc.get("status")))
    except ValueError:
        raise UnreadableDocumentError(f"unknown status {doc.get('status')!r:.40}") from None
    title = doc.get("title")
    if not isinstance(title, str):
        raise UnreadableDocumentError("title is missing or not a string")
    problem = text_problem(title)
    if problem is not None:
        raise UnreadableDocumentError(f"title: {problem}")
    description = doc.get("description")
    deleted = doc.get("deleted", False)
    if not isinstance(deleted, bool):
        raise UnreadableDocumentError(f"deleted must be a boolean, got {deleted!r:.40}")
    try:
        created = coerce_instant(doc.get("createdAt"))
        updated = coerce_instant(doc.get("updatedAt"))
        raw_deleted_at = doc.get("deletedAt")
        deleted_at = coerce_instant(raw_deleted_at) if raw_deleted_at is not None else None
    except InvalidDate as exc:
        raise UnreadableDocumentError(f"bad date: {exc}") from None
    return WorkOrder(
        number=number,
        status=status,
        title=title,
        created_at=created,
        updated_at=updated,
        deleted=deleted,
        deleted_at=deleted_at if deleted else None,
        description=description if isinstance(description, str) else None,
    )
