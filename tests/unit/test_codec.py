"""Validation messages: every problem has its record index, JSON path and a readable reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.builders import client_record
from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.mapping import builtin_mapping

decoder = RecordDecoder(builtin_mapping())


def problems(value: Any) -> list[tuple[int | None, str, str]]:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return [(p.record, p.path, p.reason) for p in decoder.decode(raw).problems]


def test_valid_object_and_array() -> None:
    single = decoder.decode(orjson.dumps(client_record(1)))
    assert [r.number for r in single.records] == [1] and not single.problems
    page = decoder.decode(orjson.dumps([client_record(1), client_record(2)]))
    assert [r.number for r in page.records] == [1, 2] and page.rejected == 0
    empty = decoder.decode(b"[]")
    assert (empty.records, empty.problems, empty.rejected) == ([], [], 0)


@pytest.mark.parametrize(
    ("overrides", "path", "reason"),
    [
        ({"orderNo": 0}, "$.orderNo", "less than the minimum of 1"),
        ({"orderNo": -3}, "$.orderNo", "less than the minimum of 1"),
        ({"orderNo": "12"}, "$.orderNo", "is not of type 'integer'"),
        ({"orderNo": True}, "$.orderNo", "is not of type 'integer'"),
        ({"orderNo": 1.5}, "$.orderNo", "is not of type 'integer'"),
        ({"orderNo": 2**63}, "$.orderNo", "greater than the maximum"),
        ({"isDone": "yes"}, "$.isDone", "is not of type 'boolean'"),
        ({"isDone": 1}, "$.isDone", "is not of type 'boolean'"),
        ({"summary": None}, "$.summary", "is not of type 'string'"),
        ({"lastUpdateDate": 1714564800}, "$.lastUpdateDate", "is not of type 'string'"),
        ({"lastUpdateDate": "2024-05-01"}, "$.lastUpdateDate", "date and time required"),
        ({"creationDate": "31/12/2024 10:00"}, "$.creationDate", "date and time required"),
        ({"isDeleted": True, "deletedDate": "never"}, "$.deletedDate", "ISO 8601"),
        ({"isDone": True}, "$", "ambiguous status: isDone, isPending are all true"),
    ],
)
def test_field_problems(overrides: dict[str, Any], path: str, reason: str) -> None:
    found = problems(client_record(5, **overrides))
    assert any(p == path and reason in r for _, p, r in found), found
    assert all(record == 0 for record, _, _ in found)


def test_missing_fields_point_at_the_field() -> None:
    record = client_record(5)
    del record["orderNo"], record["lastUpdateDate"]
    found = problems(record)
    assert (0, "$.orderNo", "'orderNo' is a required property") in found
    assert (0, "$.lastUpdateDate", "'lastUpdateDate' is a required property") in found


def test_array_problems_carry_the_record_index() -> None:
    found = problems([client_record(1), client_record(2, orderNo="x"), "oops"])
    assert {record for record, _, _ in found} == {1, 2}
    assert (2, "$", "\"oops\" is not of type 'object'") in found


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "file is empty"),
        (b" \n\t", "file is empty"),
        (b"{", "not valid JSON"),
        (b'{"orderNo": NaN}', "NaN is not a JSON number"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b'{"orderNo": 1, "orderNo": 2}', "duplicate key 'orderNo'"),
        (b'{"orderNo": Infinity}', "Infinity is not a JSON number"),
        (b"42", "got a number"),
        (b'"text"', "got a string"),
        (b"null", "got null"),
    ],
)
def test_whole_file_problems(raw: bytes, reason: str) -> None:
    decoded = decoder.decode(raw)
    assert decoded.rejected == 1 and not decoded.records
    assert decoded.problems[0].record is None
    assert decoded.problems[0].path == "$"
    assert reason in decoded.problems[0].reason


def test_unknown_fields_are_reported_not_kept() -> None:
    decoded = decoder.decode(orjson.dumps(client_record(1, extra=1, **{"$set": {}})))
    assert decoded.unknown_fields == {"extra", "$set"}
    assert len(decoded.records) == 1
