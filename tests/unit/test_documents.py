"""Reading TracOS documents, including the shapes other writers leave behind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.builders import TRACOS_FIELDS, tracos_doc
from tracos_sync.domain.model import Status
from tracos_sync.tracos.documents import UnreadableDocumentError, insert_document, read_document


def test_reads_bson_and_string_dates() -> None:
    order = read_document(
        tracos_doc(1, createdAt="2024-04-01T05:00:00-03:00", updatedAt=datetime(2024, 5, 1, 12))
    )
    assert order.created_at == datetime(2024, 4, 1, 8, tzinfo=UTC)
    assert order.updated_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert order.status is Status.PENDING
    assert order.description == "Description 1"


def test_missing_deleted_fields_mean_not_deleted() -> None:
    doc = tracos_doc(1)
    del doc["deleted"], doc["deletedAt"]
    order = read_document(doc)
    assert (order.deleted, order.deleted_at) == (False, None)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"number": None}, "number must be a positive integer"),
        ({"number": "5"}, "number must be a positive integer"),
        ({"number": True}, "number must be a positive integer"),
        ({"number": 0}, "number must be a positive integer"),
        ({"status": "done"}, "unknown status"),
        ({"status": None}, "unknown status"),
        ({"title": None}, "title is missing"),
        ({"updatedAt": "garbage"}, "bad date"),
        ({"createdAt": None}, "bad date"),
        ({"deleted": "no"}, "deleted must be a boolean"),
    ],
)
def test_unreadable_documents_say_why(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnreadableDocumentError, match=reason):
        read_document({**tracos_doc(1), **overrides})


def test_insert_document_sets_description_from_title_and_marks_synced() -> None:
    order = read_document(tracos_doc(3))
    fresh = type(order)(order.number, order.status, "Title", order.created_at, order.updated_at)
    now = datetime(2024, 6, 1, tzinfo=UTC)
    doc = insert_document(fresh, now)
    assert doc["description"] == "Title"
    assert (doc["isSynced"], doc["syncedAt"]) == (True, now)
    assert set(doc) == TRACOS_FIELDS
