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


def test_a_date_outside_pythons_range_makes_the_document_unreadable_not_the_page() -> None:
    # mongod stores any int64 of milliseconds; the client decodes those outside years 1-9999
    # as DatetimeMS (DATETIME_AUTO) instead of failing the whole page. (SecantusDB cannot store
    # such a date, so this is checked here rather than end to end.)
    from bson.codec_options import DatetimeConversion
    from bson.datetime_ms import DatetimeMS

    from tracos_sync.app import AppSettings, mongo_client

    client = mongo_client("mongodb://127.0.0.1:1", AppSettings(_env_file=None))
    assert client.codec_options.datetime_conversion == DatetimeConversion.DATETIME_AUTO
    doc = tracos_doc(1, updatedAt=DatetimeMS(-(10**15)))
    with pytest.raises(UnreadableDocumentError, match="outside years 1-9999"):
        read_document(doc)


def test_text_that_is_not_valid_unicode_makes_the_document_unreadable() -> None:
    with pytest.raises(UnreadableDocumentError, match="not valid Unicode"):
        read_document(tracos_doc(1, title="bad \ud800"))
