"""The field kinds real ERPs need, each both ways and with its refusals: formatted keys, typed
status values, flag encodings, a date format per field, a date and a time in two fields, OData v2
dates; and what a client-only field does each way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.unit.test_mapping import VALUES, WHERE, described, order, refusal, rejected
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Status
from tracos_sync.mapping import RecordMapping, load_mapping

T_CREATED = "2024-05-01T10:00:00.000Z"
T_UPDATED = "2024-05-01T12:30:15.250Z"


def with_fields(**fields: Any) -> dict[str, Any]:
    description = described()
    description["fields"].update(fields)
    return description


def record(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": 42,
        "title": "Replace belt",
        "status": "DONE",
        "created": T_CREATED,
        "updated": T_UPDATED,
        "deleted": False,
        "deletedAt": None,
    }
    item.update(changes)
    return item


def build(description: dict[str, Any]) -> RecordMapping:
    return load_mapping(description, where=WHERE)


# -- formatted keys


@pytest.mark.parametrize(
    ("key", "number", "written"),
    [
        ({"prefix": "WO-", "width": 6}, 123, "WO-000123"),
        ({"width": 12}, 4000123, "000004000123"),
        ({"prefix": "WO-"}, 123, "WO-123"),
        ({"width": 19}, 2**63 - 1, "9223372036854775807"),
    ],
)
def test_a_formatted_key_is_written_and_read_back(
    key: dict[str, Any], number: int, written: str
) -> None:
    m = build(with_fields(number={"path": "id", **key}))
    out = m.encode(order(number=number))
    assert out["id"] == written
    assert m.decode(orjson.loads(orjson.dumps(out))).number == number
    assert m.key_of(out) == (order().updated_at, number)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        # Not the one form it is written in: read back, it would write other bytes.
        ({"prefix": "WO-", "width": 6}, "WO-00123", '"WO-00123" is not a number written like'),
        ({"prefix": "WO-", "width": 6}, "WO-0000123", 'is not a number written like "WO-000123"'),
        ({"prefix": "WO-", "width": 6}, "wo-000123", "is not a number written like"),
        ({"prefix": "WO-", "width": 6}, 123, "123 is not of type 'string'"),
        ({"width": 12}, "000000000000", '"000000000000" is not a number written like'),
        ({"prefix": "WO-"}, "WO-0123", '"WO-0123" is not a number written like "WO-123"'),
        ({"width": 3}, "１２３", 'is not a number written like "123"'),  # noqa: RUF001
    ],
)
def test_a_formatted_key_refuses_every_other_form(
    key: dict[str, Any], value: Any, reason: str
) -> None:
    m = build(with_fields(number={"path": "id", **key}))
    problems = rejected(m, record(id=value))
    assert problems[0][0] == "$.id"
    assert reason in problems[0][1], problems


def test_a_number_wider_than_the_key_is_refused_outbound_alone() -> None:
    m = build(with_fields(number={"path": "id", "prefix": "WO-", "width": 6}))
    with pytest.raises(RecordRejected) as caught:
        m.encode(order(number=1_000_000))
    assert [(p.path, p.reason) for p in caught.value.problems] == [
        ("$.id", "number 1000000 has more than 6 digits")
    ]


@pytest.mark.parametrize(
    ("field", "key", "message"),
    [
        ({"path": "id", "width": 0}, "fields.number.width", "a width is 1 to 19"),
        ({"path": "id", "width": 20}, "fields.number.width", "a width is 1 to 19"),
    ],
)
def test_a_key_format_that_cannot_round_trip_is_refused(
    field: dict[str, Any], key: str, message: str
) -> None:
    assert f"mapping.{key}: " in refusal(with_fields(number=field))
    assert message in refusal(with_fields(number=field))


def test_options_are_refused_on_fields_they_do_not_fit() -> None:
    text = refusal(with_fields(title={"path": "title", "width": 6}))
    assert "mapping.fields.title.width: only number may say width" in text
    text = refusal(with_fields(number={"path": "id", "format": "epoch_ms"}))
    assert "mapping.fields.number.format: only created_at, updated_at, deleted_at" in text


# -- typed status values


def integer_codes() -> dict[str, Any]:
    codes = {"10": "pending", "20": "in_progress", "30": "on_hold", "40": "completed"}
    return {"field": "status", "type": "integer", "values": {**codes, "50": "cancelled"}}


def test_integer_status_codes_are_read_and_written_as_integers() -> None:
    m = build(described(status=integer_codes()))
    assert m.encode(order(status=Status.ON_HOLD))["status"] == 30
    assert m.decode(record(status=20)).status is Status.IN_PROGRESS
    assert m.json_schema()["properties"]["status"]["enum"] == [10, 20, 30, 40, 50]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("20", '"20" is not one of 10, 20, 30, 40, 50'),
        (60, "60 is not one of 10, 20, 30, 40, 50"),
        (True, "true is not one of 10, 20, 30, 40, 50"),
        (20.0, None),  # JSON's 20.0 is no code: refused, whichever check says so
    ],
)
def test_integer_status_codes_refuse_other_values_in_json_spelling(
    value: Any, reason: str | None
) -> None:
    m = build(described(status=integer_codes()))
    problems = rejected(m, record(status=value))
    assert problems, problems
    if reason is not None:
        assert ("$.status", reason) in problems, problems


def test_string_status_values_refuse_a_number_without_reading_as_a_contradiction() -> None:
    values = {str(10 * (i + 1)): s for i, s in enumerate(VALUES.values())}
    m = build(described(status={"field": "status", "values": values}))
    problems = rejected(m, record(status=20))
    assert ("$.status", '20 is not one of "10", "20", "30", "40", "50"') in problems


@pytest.mark.parametrize(
    ("key", "message"), [("010", "'010' is not an integer as JSON writes it"), ("x", "'x' is")]
)
def test_integer_status_codes_must_be_written_as_json_writes_them(key: str, message: str) -> None:
    status = integer_codes()
    status["values"][key] = "pending"
    status["write"] = {"pending": "10"}
    text = refusal(described(status=status))
    assert f"mapping.status.values.{key}: {message}" in text, text


# -- flag encodings


SAP_FLAG = {"path": "deleted", "true": "X", "false": ""}


@pytest.mark.parametrize(
    ("encoding", "deleted", "kept"),
    [({"true": "X", "false": ""}, "X", ""), ({"true": "Y", "false": "N"}, "Y", "N"),
     ({"true": 1, "false": 0}, 1, 0)],
)  # fmt: skip
def test_a_deletion_flag_with_an_encoding_round_trips(
    encoding: dict[str, Any], deleted: Any, kept: Any
) -> None:
    m = build(with_fields(deleted={"path": "deleted", **encoding}))
    gone = order(deleted=True, deleted_at=datetime(2024, 5, 2, tzinfo=UTC))
    assert m.encode(gone)["deleted"] == deleted
    assert m.encode(order(deleted=False))["deleted"] == kept
    assert m.decode(record(deleted=deleted, deletedAt="2024-05-02T00:00:00Z")).deleted is True
    assert m.decode(record(deleted=kept)).deleted is False


@pytest.mark.parametrize("value", ["x", "Y", True, None, 1])
def test_a_deletion_flag_refuses_what_is_neither_value(value: Any) -> None:
    m = build(with_fields(deleted=SAP_FLAG))
    problems = rejected(m, record(deleted=value))
    assert problems and problems[0][0] == "$.deleted", problems


def test_a_numeric_flag_does_not_take_a_boolean() -> None:
    m = build(with_fields(deleted={"path": "deleted", "true": 1, "false": 0}))
    assert rejected(m, record(deleted=True)) == [("$.deleted", "true is not one of 1, 0")]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"path": "d", "true": "X", "false": "X"}, "true and false are both 'X'"),
        ({"path": "d", "true": "X"}, "give both true and false"),
    ],
)
def test_a_flag_encoding_that_cannot_round_trip_is_refused(
    field: dict[str, Any], message: str
) -> None:
    text = refusal(with_fields(deleted=field))
    assert f"mapping.fields.deleted: {message}" in text, text


def test_status_flags_with_an_encoding_round_trip_and_refuse_other_values() -> None:
    flags = {"fDone": "completed", "fHold": "on_hold", "fPend": "pending", "fCanc": "cancelled"}
    m = build(described(status={"flags": flags, "true": "X", "false": ""}))
    out = m.encode(order(status=Status.ON_HOLD))
    assert [out[f] for f in flags] == ["", "X", "", ""]
    flat = record(**{**dict.fromkeys(flags, ""), "fHold": "X"})
    del flat["status"]
    assert m.decode(flat).status is Status.ON_HOLD
    assert m.decode({**flat, "fHold": ""}).status is Status.IN_PROGRESS
    assert rejected(m, {**flat, "fDone": "X"})[0][1].startswith("ambiguous status")
    assert rejected(m, {**flat, "fDone": True})[0][0] == "$.fDone"
    text = refusal(described(status={"flags": flags, "true": 0, "false": 0}))
    assert "mapping.status.true: true and false are both 0" in text


# -- dates: a format per field, a date and a time in two fields, OData v2


def test_a_date_field_with_its_own_format_overrides_the_mappings() -> None:
    m = build(with_fields(created_at={"path": "created", "format": "%d/%m/%Y %H:%M"}))
    out = m.encode(order())
    assert (out["created"], out["updated"]) == ("01/05/2024 10:00", T_UPDATED)
    back = m.decode(orjson.loads(orjson.dumps(out)))
    assert (back.created_at, back.updated_at) == (order().created_at, order().updated_at)


PAIR = {"path": "created", "format": "%Y%m%d", "time": "createdTime", "time_format": "%H%M%S"}


def test_a_date_and_a_time_in_two_fields_are_read_in_the_mappings_zone() -> None:
    m = build({**with_fields(created_at=PAIR), "timezone": "Europe/Berlin"})
    back = m.decode(record(created="20250310", createdTime="142205"))
    assert back.created_at == datetime(2025, 3, 10, 13, 22, 5, tzinfo=UTC)
    out = m.encode(back)
    assert (out["created"], out["createdTime"]) == ("20250310", "142205")
    assert "createdTime" in m.json_schema()["required"]


@pytest.mark.parametrize(
    ("date", "time", "reason"),
    [
        ("20250310", "1422", "not a date in the format '%Y%m%d' + '%H%M%S'"),
        ("2025031", "142205", "not a date in the format '%Y%m%d' + '%H%M%S'"),
        ("20250230", "142205", "not a date in the format '%Y%m%d' + '%H%M%S'"),
        ("20250330", "023000", "does not exist in Europe/Berlin"),
    ],
)
def test_a_date_and_time_pair_refuses_what_it_would_not_write(
    date: str, time: str, reason: str
) -> None:
    m = build({**with_fields(created_at=PAIR), "timezone": "Europe/Berlin"})
    problems = rejected(m, record(created=date, createdTime=time))
    assert problems[0][0] == "$.created"
    assert reason in problems[0][1], problems


def test_a_deletion_date_pair_is_null_when_not_deleted() -> None:
    pair = {**PAIR, "path": "deletedAt", "time": "deletedTime"}
    m = build(with_fields(deleted_at=pair))
    assert m.encode(order())["deletedAt"] is None
    assert m.encode(order())["deletedTime"] is None
    assert m.decode(record(deletedTime=None)).deleted_at is None
    gone = m.decode(record(deleted=True, deletedAt="20240502", deletedTime="000000"))
    assert gone.deleted_at == datetime(2024, 5, 2, tzinfo=UTC)
    problems = rejected(m, record(deleted=True, deletedAt="20240502"))
    assert problems[0][0] == "$.deletedAt" and "absent" in problems[0][1], problems


@pytest.mark.parametrize(
    ("field", "key", "message"),
    [
        ({**PAIR, "time_format": "%M%S"}, "fields.created_at", "lacks an hour"),
        ({**PAIR, "time_format": "%H%S"}, "fields.created_at", "cannot be read back"),
        ({**PAIR, "format": "iso8601"}, "fields.created_at", "lacks"),
        ({"path": "created", "time": "t"}, "fields.created_at.time", "needs format"),
        ({"path": "created", "time_format": "%H"}, "fields.created_at.time_format", "needs time"),
        ({**PAIR, "time": "title"}, "fields.created_at.time", "already used by mapping.fields"),
        ({"path": "created", "format": "%Y%m%d"}, "fields.created_at.format", "lacks an hour"),
    ],
)  # fmt: skip
def test_date_descriptions_that_cannot_round_trip_are_refused_at_their_key(
    field: dict[str, Any], key: str, message: str
) -> None:
    text = refusal(with_fields(created_at=field))
    assert f"mapping.{key}: " in text and message in text, text


def test_odata_v2_dates_are_read_with_or_without_an_offset_and_written_without() -> None:
    m = build(described(date_format="odata_v2"))
    plain = m.decode(record(created="/Date(1741616525000)/", updated="/Date(1741616525000)/"))
    assert plain.created_at == datetime(2025, 3, 10, 14, 22, 5, tzinfo=UTC)
    # The offset only says where the writer was: the milliseconds are UTC already.
    shifted = m.decode(record(created="/Date(1741616525000+0060)/", updated="/Date(0)/"))
    assert shifted.created_at == plain.created_at
    assert m.encode(shifted)["created"] == "/Date(1741616525000)/"
    assert m.encode(shifted)["updated"] == "/Date(0)/"
    negative = m.decode(record(updated="/Date(-1000)/", created="/Date(0)/"))
    assert negative.updated_at == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", ["/Date(abc)/", "Date(1741616525000)", "/Date(1741616525000+60)/", 1741616525000]
)
def test_odata_v2_refuses_what_is_not_one(value: Any) -> None:
    m = build(described(date_format="odata_v2"))
    problems = rejected(m, record(created=value))
    assert problems and problems[0][0] == "$.created", problems


# -- client-only fields


def test_a_client_only_field_is_tolerated_inbound_and_a_constant_outbound() -> None:
    m = build(described(constants={"plant": "1000"}))
    unknown: set[str] = set()
    back = m.decode(record(plant="2000", costCenter="CC-7"), unknown)
    assert back == m.decode(record())  # neither is stored: TracOS has no place for them
    assert unknown == {"costCenter"}  # plant is the mapping's: known, its value not compared
    assert m.encode(back)["plant"] == "1000"
    assert rejected(m, record(plant=1000))[0][0] == "$.plant"  # a constant's type is checked
