"""Record mappings: each feature of a description, both ways, and the errors a description that
cannot work is refused with (each naming its file, its integration and its key)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.builders import client_record
from tracos_sync.domain.errors import ConfigurationError, RecordRejected
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.mapping import BUILTIN, RecordMapping, builtin_mapping, load_mapping

EXAMPLE = Path(__file__).parents[2] / "examples" / "mappings" / "globex.toml"
WHERE = 'integrations.toml: integration "acme"'
VALUES = {
    "OPEN": "pending",
    "IN_PROGRESS": "in_progress",
    "DONE": "completed",
    "CANCELLED": "cancelled",
    "ON_HOLD": "on_hold",
}


def example_description() -> dict[str, Any]:
    description: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())["mapping"]
    return description


def described(**changes: Any) -> dict[str, Any]:
    """A small flat description with a status field, changed by ``changes``."""
    description: dict[str, Any] = {
        "fields": {
            "number": "id",
            "title": "title",
            "created_at": "created",
            "updated_at": "updated",
            "deleted": "deleted",
            "deleted_at": "deletedAt",
        },
        "status": {"field": "status", "values": dict(VALUES)},
    }
    description.update(changes)
    return description


def mapping(**changes: Any) -> RecordMapping:
    return load_mapping(described(**changes), where=WHERE)


def order(**changes: Any) -> WorkOrder:
    values: dict[str, Any] = {
        "number": 42,
        "status": Status.COMPLETED,
        "title": "Replace belt",
        "created_at": datetime(2024, 5, 1, 10, tzinfo=UTC),
        "updated_at": datetime(2024, 5, 1, 12, 30, 15, 250_000, tzinfo=UTC),
    }
    values.update(changes)
    return WorkOrder(**values)


def rejected(m: RecordMapping, item: Any) -> list[tuple[str, str]]:
    with pytest.raises(RecordRejected) as caught:
        m.decode(item)
    return [(p.path, p.reason) for p in caught.value.problems]


def refusal(description: Any, where: str = WHERE) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_mapping(description, where=where)
    return str(caught.value)


# -- the built-in mapping


def test_none_is_the_builtin_mapping_in_the_given_zone() -> None:
    assert load_mapping(None, where=WHERE) is builtin_mapping("UTC")
    sao_paulo = load_mapping(None, where=WHERE, default_timezone="America/Sao_Paulo")
    record = client_record(1, lastUpdateDate="2024-05-01T09:00:00")
    assert sao_paulo.decode(record).updated_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_builtin_writes_todays_keys_in_todays_order() -> None:
    written = builtin_mapping().encode(order(status=Status.ON_HOLD, deleted=True))
    assert list(written) == list(BUILTIN["order"])
    assert written["isOnHold"] is True and written["isSynced"] is True
    assert written["deletedDate"] == "2024-05-01T12:30:15.250Z"


def test_builtin_reads_its_key_leniently() -> None:
    m = builtin_mapping()
    assert m.key_of(client_record(7, isDone="not a flag")) == (
        datetime(2024, 5, 1, 12, tzinfo=UTC),
        7,
    )
    for bad in ({"orderNo": "7"}, {"orderNo": True}, {"lastUpdateDate": "soon"}):
        assert m.key_of({**client_record(7), **bad}) is None
    assert m.key_of([client_record(7)]) is None
    assert m.number_path == "$.orderNo" and m.updated_path == "$.lastUpdateDate"


# -- fields, nesting, unknown fields


def test_example_reads_nested_fields_and_its_status_string() -> None:
    m = load_mapping(example_description(), where=WHERE)
    unknown: set[str] = set()
    item = {
        "id": 42,
        "status": "DONE",
        "details": {"title": "Replace belt", "priority": 1},
        "dates": {"created": "01/05/2024 07:00", "updated": "01/05/2024 09:30", "deleted": None},
        "extra": True,
    }
    assert m.decode(item, unknown) == order(updated_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
    assert unknown == {"details.priority", "extra"}


def test_example_writes_nested_fields_in_its_order() -> None:
    m = load_mapping(example_description(), where=WHERE)
    written = m.encode(order(deleted=True))
    assert orjson.dumps(written) == orjson.dumps(
        {
            "id": 42,
            "status": "DONE",
            "details": {"title": "Replace belt"},
            "deleted": True,
            "dates": {
                "created": "01/05/2024 07:00",
                "updated": "01/05/2024 09:30",
                "deleted": "01/05/2024 09:30",
            },
            "source": "tracos",
        }
    )


@pytest.mark.parametrize(
    ("item", "path", "reason"),
    [
        ({"details": {}}, "$.details.title", "'title' is a required property"),
        ({"details": "x"}, "$.details", "is not of type 'object'"),
        ({"id": 1.0}, "$.id", "is not of type 'integer'"),
        ({"id": "1"}, "$.id", "is not of type 'integer'"),
        ({"id": 0}, "$.id", "less than the minimum of 1"),
        ({"status": "done"}, "$.status", "is not one of"),
        ({"status": 1}, "$.status", "is not one of"),
        ({"deleted": 1}, "$.deleted", "is not of type 'boolean'"),
        ({"source": 3}, "$.source", "is not of type 'string'"),
        (
            {"dates": {"created": "2024-05-01T10:00Z", "updated": "01/05/2024 09:30"}},
            "$.dates.created",
            "not a date in the format '%d/%m/%Y %H:%M'",
        ),
        ({"details": {"title": "\ud800"}}, "$.details.title", "not valid Unicode"),
    ],
)
def test_example_refuses_with_the_clients_paths(
    item: dict[str, Any], path: str, reason: str
) -> None:
    m = load_mapping(example_description(), where=WHERE)
    good = m.encode(order())
    found = rejected(m, {**good, **item})
    assert any(p == path and reason in r for p, r in found), found


def test_required_fields_absent_are_named() -> None:
    m = load_mapping(example_description(), where=WHERE)
    good = m.encode(order())
    del good["id"], good["dates"]["updated"]
    assert ("$.id", "'id' is a required property") in rejected(m, good)
    assert ("$.dates.updated", "'updated' is a required property") in rejected(m, good)


# -- status


def test_status_values_both_ways() -> None:
    m = mapping()
    for value, status in VALUES.items():
        assert m.decode({**m.encode(order()), "status": value}).status is Status(status)
        assert m.encode(order(status=Status(status)))["status"] == value


def test_several_values_for_one_status_write_the_one_named() -> None:
    m = mapping(
        status={
            "field": "status",
            "values": {**VALUES, "CLOSED": "completed"},
            "write": {"completed": "CLOSED"},
        }
    )
    assert m.decode({**m.encode(order()), "status": "DONE"}).status is Status.COMPLETED
    assert m.encode(order())["status"] == "CLOSED"


def test_flags_with_another_none_and_optional_flags() -> None:
    m = mapping(
        status={
            "flags": {
                "open": "pending",
                "busy": "in_progress",
                "done": "completed",
                "void": "cancelled",
                "held": "on_hold",
            },
            "none": "pending",
            "optional": ["busy", "held"],
        }
    )
    written = m.encode(order(status=Status.ON_HOLD))
    assert [k for k in ("open", "busy", "done", "void", "held") if written[k]] == ["held"]
    base = {k: v for k, v in written.items() if k not in ("busy", "held")}
    assert m.decode({**base, "open": False}).status is Status.PENDING  # none set
    assert m.decode({**base, "done": True}).status is Status.COMPLETED
    assert rejected(m, {**base, "done": True, "void": True}) == [
        ("$", "ambiguous status: done, void are all true")
    ]
    assert ("$.open", "'open' is a required property") in rejected(
        m, {k: v for k, v in base.items() if k != "open"}
    )


def test_a_status_without_a_flag_of_its_own_is_written_as_no_flag() -> None:
    m = mapping(
        status={
            "flags": {
                "open": "pending",
                "done": "completed",
                "void": "cancelled",
                "held": "on_hold",
            },
            "none": "in_progress",
        }
    )
    written = m.encode(order(status=Status.IN_PROGRESS))
    assert not any(written[k] for k in ("open", "done", "void", "held"))
    assert m.decode(written).status is Status.IN_PROGRESS


# -- dates


@pytest.mark.parametrize(
    ("date_format", "timezone", "written"),
    [
        ("iso8601", "America/Sao_Paulo", "2024-05-01T12:30:15.250Z"),
        ("epoch_ms", "UTC", 1714566615250),
        ("epoch_s", "UTC", 1714566615),
        ("%d/%m/%Y %H:%M", "America/Sao_Paulo", "01/05/2024 09:30"),
        ("%Y-%m-%d %H:%M:%S.%f", "Asia/Kolkata", "2024-05-01 18:00:15.250000"),
        ("%Y%m%dT%H%M%S%z", "Europe/Paris", "20240501T143015+0200"),
        ("%m/%d/%Y %I:%M %p", "UTC", "05/01/2024 12:30 PM"),
    ],
)
def test_date_formats_both_ways(date_format: str, timezone: str, written: Any) -> None:
    m = mapping(date_format=date_format, timezone=timezone)
    record = m.encode(order())
    assert record["updated"] == written
    precise = {"epoch_s": 1, "%d/%m/%Y %H:%M": 60, "%Y%m%dT%H%M%S%z": 1, "%m/%d/%Y %I:%M %p": 60}
    step = precise.get(date_format)
    expected = order().updated_at
    if step is not None:  # written at the format's precision: truncated
        expected = datetime.fromtimestamp(expected.timestamp() // step * step, UTC)
    assert m.decode(record).updated_at == expected


def test_naive_iso_is_read_in_the_zone_and_offsets_are_exact() -> None:
    m = mapping(timezone="America/Sao_Paulo")
    base = m.encode(order())
    assert m.decode({**base, "updated": "2024-05-01T09:30:00"}).updated_at == datetime(
        2024, 5, 1, 12, 30, tzinfo=UTC
    )
    assert m.decode({**base, "updated": "2024-05-01T09:30:00+01:00"}).updated_at == datetime(
        2024, 5, 1, 8, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("date_format", ["iso8601", "%Y-%m-%d %H:%M"])
def test_a_time_the_zone_skips_is_refused(date_format: str) -> None:
    m = mapping(date_format=date_format, timezone="America/New_York")
    base = m.encode(order())
    gap = "2024-03-10T02:30:00" if date_format == "iso8601" else "2024-03-10 02:30"
    found = rejected(m, {**base, "updated": gap})
    assert found == [
        (
            "$.updated",
            "2024-03-10 02:30:00 does not exist in America/New_York "
            "(skipped by a daylight-saving change)",
        )
    ]


@pytest.mark.parametrize("date_format", ["iso8601", "%Y-%m-%d %H:%M"])
def test_a_time_the_zone_repeats_is_the_earlier_instant(date_format: str) -> None:
    m = mapping(date_format=date_format, timezone="America/New_York")
    base = m.encode(order())
    twice = "2024-11-03T01:30:00" if date_format == "iso8601" else "2024-11-03 01:30"
    # 01:30 EDT (UTC-4), not 01:30 EST (UTC-5)
    assert m.decode({**base, "updated": twice}).updated_at == datetime(
        2024, 11, 3, 5, 30, tzinfo=UTC
    )
    # And outbound, the second 01:30 is written as the wall clock shows it.
    later = order(updated_at=datetime(2024, 11, 3, 6, 30, tzinfo=UTC))
    if date_format != "iso8601":
        assert m.encode(later)["updated"] == "2024-11-03 01:30"


@pytest.mark.parametrize(
    ("date_format", "value", "reason"),
    [
        ("epoch_ms", "1714566615250", "is not of type 'integer'"),
        ("epoch_ms", 1.5, "is not of type 'integer'"),
        ("epoch_ms", 10**20, "outside years 1-9999"),
        ("epoch_s", True, "is not of type 'integer'"),
        ("epoch_s", 10**17, "epoch seconds 100000000000000000 are outside years 1-9999"),
        ("epoch_ms", -(10**17), "epoch milliseconds -100000000000000000 are outside years"),
        ("%d/%m/%Y %H:%M", "31/02/2024 10:00", "not a date in the format"),
        ("%d/%m/%Y %H:%M", 5, "is not of type 'string'"),
        ("%d/%m/%Y %H:%M", "4/11/2018 1:5", "(each number at its full width, zero-padded)"),
        ("%d/%m/%Y %H:%M", "04/11/2018  01:05", "(each number at its full width, zero-padded)"),
        ("%Y%m%d%H%M", "2024111105", "not a date in the format '%Y%m%d%H%M'"),
        ("%Y-%m-%d %H:%M:%S.%f", "2024-05-01 10:00:00.5", "at its full width"),
    ],
)
def test_bad_dates(date_format: str, value: Any, reason: str) -> None:
    m = mapping(date_format=date_format)
    found = rejected(m, {**m.encode(order()), "created": value})
    assert any(p == "$.created" and reason in r for p, r in found), found


def test_early_years_keep_four_digits_with_a_pattern() -> None:
    m = mapping(date_format="%d/%m/%Y %H:%M")
    early = order(created_at=datetime(1, 1, 2, 3, 4, tzinfo=UTC))
    assert m.encode(early)["created"] == "02/01/0001 03:04"
    assert m.decode(m.encode(early)).created_at == early.created_at


MIN = datetime(1, 1, 1, tzinfo=UTC)
MAX = datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("date_format", "timezone"),
    [
        ("iso8601", "Asia/Tokyo"),
        ("iso8601", "America/Sao_Paulo"),
        ("epoch_ms", "UTC"),
        ("epoch_s", "UTC"),
        ("%Y-%m-%d %H:%M:%S", "UTC"),
    ],
)
@pytest.mark.parametrize("instant", [MIN, MAX])
def test_the_ends_of_the_calendar_are_written_when_the_format_can(
    date_format: str, timezone: str, instant: datetime
) -> None:
    m = mapping(date_format=date_format, timezone=timezone)
    extreme = order(created_at=instant, updated_at=instant)
    back = m.decode(m.encode(extreme))
    precision = 1 if date_format in {"epoch_ms", "iso8601"} else 1000
    expected = instant.replace(microsecond=instant.microsecond // 1000 // precision * 1000)
    assert (back.created_at, back.updated_at) == (expected, expected)


@pytest.mark.parametrize(
    ("timezone", "instant", "fine"),
    [
        # Behind UTC: the first hours of year 1 are local times in year 0.
        ("America/Sao_Paulo", MIN, MAX),
        # Ahead of UTC: the last hours of 9999 are local times in year 10000.
        ("Asia/Tokyo", datetime(9999, 12, 31, 23, tzinfo=UTC), datetime(1, 1, 1, 1, tzinfo=UTC)),
    ],
)
@pytest.mark.parametrize("nested", [False, True])
def test_an_order_a_pattern_cannot_write_is_rejected_alone(
    timezone: str, instant: datetime, fine: datetime, nested: bool
) -> None:
    fields = {**described()["fields"], "created_at": "dates.created"} if nested else None
    m = mapping(
        date_format="%d/%m/%Y %H:%M",
        timezone=timezone,
        **({"fields": fields} if fields else {}),
    )
    with pytest.raises(RecordRejected) as caught:
        m.encode(order(created_at=instant))
    shown = instant.isoformat().replace("+00:00", ".000Z")
    assert [(p.path, p.reason, p.record) for p in caught.value.problems] == [
        (
            "$.dates.created" if nested else "$.created",
            f"createdAt {shown} cannot be written in {timezone} as %d/%m/%Y %H:%M "
            "(its local time is outside years 1-9999)",
            42,
        )
    ]
    # Written at the pattern's precision, an instant that would read back before year 1 (local
    # mean time in Tokyo was +09:18:59) is not written either.
    with pytest.raises(RecordRejected):
        m.encode(order(created_at=MIN))
    # Every date it cannot write is named; the other end of the calendar is written.
    deleted = order(created_at=instant, updated_at=instant, deleted=True, deleted_at=instant)
    with pytest.raises(RecordRejected) as caught:
        m.encode(deleted)
    assert [p.reason.split()[0] for p in caught.value.problems] == [
        "createdAt",
        "updatedAt",
        "deletedAt",
    ]
    back = m.decode(m.encode(order(created_at=fine))).created_at
    assert fine - timedelta(minutes=1) < back <= fine  # at the pattern's precision


@pytest.mark.parametrize(
    "date_format",
    ["%d %B %Y %H:%M:%S %z", "%d %b %Y %I:%M:%S.%f %p", "%Y-%m-%dT%H:%M:%S%z", "%Y%m%d%H%M"],
)
@pytest.mark.parametrize("month", [1, 7])
def test_a_pattern_reads_back_what_it_writes_in_winter_and_summer(
    date_format: str, month: int
) -> None:
    m = mapping(date_format=date_format, timezone="Europe/London")
    instant = order().updated_at.replace(month=month)
    back = m.decode(m.encode(order(updated_at=instant))).updated_at
    step = timedelta(milliseconds=1) if "%f" in date_format else timedelta(seconds=1)
    if "%S" not in date_format:
        step = timedelta(minutes=1)
    assert (
        back
        == datetime.min.replace(tzinfo=UTC)
        + (instant - datetime.min.replace(tzinfo=UTC)) // step * step
    )


@pytest.mark.parametrize(
    ("date_format", "value", "expected"),
    [
        # Names in any case, as strptime reads them; %z with or without a colon, or Z.
        ("%d %b %Y %I:%M %p", "01 MAY 2024 09:30 am", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("%Y-%m-%dT%H:%M%z", "2024-05-01T09:30+02:00", datetime(2024, 5, 1, 7, 30, tzinfo=UTC)),
        ("%Y-%m-%dT%H:%M%z", "2024-05-01T09:30Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_a_pattern_reads_names_and_offsets_as_strptime_does(
    date_format: str, value: str, expected: datetime
) -> None:
    m = mapping(date_format=date_format)
    assert m.decode({**m.encode(order()), "updated": value}).updated_at == expected


# -- deletion, constants, defaults


@pytest.mark.parametrize(
    ("deleted", "deleted_at", "expected"),
    [
        (True, 1714500000000, datetime(2024, 4, 30, 18, 0, tzinfo=UTC)),
        (True, None, datetime(2024, 5, 1, 12, 30, 15, 250_000, tzinfo=UTC)),
        (False, 1714500000000, None),
    ],
)
def test_deletion(deleted: bool, deleted_at: Any, expected: datetime | None) -> None:
    m = mapping(date_format="epoch_ms")
    record = {**m.encode(order()), "deleted": deleted, "deletedAt": deleted_at}
    decoded = m.decode(record)
    assert (decoded.deleted, decoded.deleted_at) == (deleted, expected)


def test_without_deletion_fields_nothing_is_deleted_or_written() -> None:
    description = described()
    del description["fields"]["deleted"], description["fields"]["deleted_at"]
    m = load_mapping(description, where=WHERE)
    written = m.encode(order(deleted=True))
    assert "deleted" not in written and "deletedAt" not in written
    # It cannot say whether the order is deleted: None, so TracOS keeps its own deletion.
    assert m.decode(written).deleted is None
    assert m.decode(written).deleted_at is None


def test_constants_are_written_and_only_type_checked_inbound() -> None:
    m = mapping(constants={"source": "tracos", "meta": {"version": 2, "synced": True}})
    written = m.encode(order())
    assert written["source"] == "tracos" and written["meta"] == {"version": 2, "synced": True}
    assert m.decode({**written, "source": "erp"}) == m.decode(written)
    assert m.decode({k: v for k, v in written.items() if k != "meta"}) == m.decode(written)
    assert ("$.meta.version", "\"2\" is not of type 'integer'") in rejected(
        m, {**written, "meta": {"version": "2"}}
    )


def test_defaults_stand_in_for_absent_fields() -> None:
    m = mapping(defaults={"status": "ON_HOLD", "title": "(untitled)", "deleted": False})
    written = m.encode(order())
    del written["status"], written["title"], written["deleted"]
    decoded = m.decode(written)
    assert (decoded.status, decoded.title, decoded.deleted) == (
        Status.ON_HOLD,
        "(untitled)",
        False,
    )
    assert "status" not in written  # the caller's record is not changed
    assert m.decode({**written, "status": "DONE"}).status is Status.COMPLETED


def test_optional_deleted_is_false_when_absent() -> None:
    m = mapping(fields={**described()["fields"], "deleted": {"path": "deleted", "required": False}})
    written = m.encode(order())
    del written["deleted"]
    assert m.decode(written).deleted is False


def test_order_puts_listed_paths_first() -> None:
    m = mapping(order=["updated", "id"], constants={"source": "tracos"})
    assert list(m.encode(order())) == [
        "updated",
        "id",
        "title",
        "created",
        "deleted",
        "deletedAt",
        "status",
        "source",
    ]


# -- load-time validation


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"status": {"field": "status", "values": {**VALUES, "DONE": "done2"}}},
            "mapping.status.values.DONE: unknown TracOS status 'done2' (expected one of: "
            "pending, in_progress, completed, on_hold, cancelled)",
        ),
        ({"fieldz": {}}, "mapping.fieldz: unknown key (expected one of: fields, status, "),
        (
            {"fields": {**described()["fields"], "deleted": {"path": "d", "requird": True}}},
            "mapping.fields.deleted.requird: unknown key (expected one of: path, required, prefix",
        ),
        (
            {"fields": {**described()["fields"], "number": 5}},
            'mapping.fields.number: expected a client path ("summary") or a table',
        ),
        ({"date_fromat": "iso8601"}, "mapping.date_fromat: unknown key"),
        ({"status": {"field": "status", "valus": {}}}, "mapping.status.valus: unknown key"),
        (
            {"status": {"field": "status", "values": {**VALUES, "OPEN": "in_progress"}}},
            "mapping.status.values: no client value for TracOS status pending",
        ),
        (
            {"status": {"field": "status", "values": {**VALUES, "CLOSED": "completed"}}},
            "mapping.status.write.completed: several client values map to completed "
            "('DONE', 'CLOSED'): say which one is written",
        ),
        (
            {"status": {"field": "status", "values": VALUES, "write": {"completed": "X"}}},
            "mapping.status.write.completed: 'X' is not one of the values",
        ),
        (
            {"status": {"flags": {"a": "pending", "b": "pending"}}},
            "mapping.status.flags.b: TracOS status pending already has the flag 'a'",
        ),
        (
            {"status": {"flags": {"a": "pending"}}},
            "mapping.status.flags: no flag for TracOS status completed, on_hold, cancelled",
        ),
        (
            {"status": {"flags": {"a": "pending"}, "field": "s"}},
            "mapping.status: give either flags or field, not both",
        ),
        ({"status": {"values": VALUES}}, "mapping.status: give either flags"),
        ({"status": "OPEN"}, "mapping.status: Input should be a valid dictionary"),
        ({"date_format": "dd/MM/yyyy"}, "mapping.date_format: unknown date format 'dd/MM/yyyy'"),
        (
            {"date_format": "%d/%m %H:%M"},
            "mapping.date_format: date format '%d/%m %H:%M' lacks a year (%Y)",
        ),
        ({"timezone": "Mars/Olympus"}, "mapping.timezone: unknown time zone 'Mars/Olympus'"),
        ({"timezone": ""}, "mapping.timezone: empty (leave the key out for the default zone)"),
        ({"timezone": "  "}, "mapping.timezone: empty (leave the key out for the default zone)"),
        (
            {"date_format": "%Y-%m-%d %H:%M:%S %Z", "timezone": "Europe/London"},
            "mapping.date_format: date format '%Y-%m-%d %H:%M:%S %Z' cannot use %Z: a zone name "
            "(BST, CEST) cannot be read back, use %z (+0100) (a pattern may use: %Y %m %d %H %I "
            "%M %S %f %z %p %b %B %%)",
        ),
        ({"date_format": "%d/%m/%y %H:%M"}, "cannot use %y: a two-digit year"),
        ({"date_format": "%c"}, "cannot use %c: a locale's date and time"),
        ({"date_format": "%x %X"}, "cannot use %X: a locale's time depends on the locale, spell"),
        ({"date_format": "%a %d/%m/%Y %H:%M"}, "cannot use %a: a weekday is not checked"),
        ({"date_format": "%Y %j %H:%M"}, "cannot use %j: a day of the year duplicates"),
        ({"date_format": "%Y-%m-%d %-H:%M"}, "cannot use %-: not a directive a pattern may use"),
        ({"date_format": "%F %T"}, "cannot use %F: not a directive a pattern may use and %T:"),
        (
            {"date_format": "%Y-%m-%d %H:%S"},
            "mapping.date_format: date format '%Y-%m-%d %H:%S' cannot be read back: "
            "2024-01-15T10:04:05.007Z is written '2024-01-15 10:05', read back as "
            "2024-01-15T10:00:05.000Z (expected 2024-01-15T10:00:00.000Z)",
        ),
        (
            {"date_format": "%Y-%m-%d %H.%f"},
            "mapping.date_format: date format '%Y-%m-%d %H.%f' cannot be read back",
        ),
        (
            {"constants": {"id": 1}},
            "mapping.constants.id: client path 'id' is already used by mapping.fields.number",
        ),
        (
            {"constants": {"title.x": 1}},
            "mapping.constants.title.x: client path 'title.x' and "
            "'title' (mapping.fields.title) overlap",
        ),
        (
            {"constants": {"x": [1]}},
            "mapping.constants.x: a constant is a string, number or boolean",
        ),
        ({"constants": {"z": float("nan")}}, "mapping.constants.z: nan is not a JSON number"),
        ({"constants": {"z": float("-inf")}}, "mapping.constants.z: -inf is not a JSON number"),
        ({"defaults": {"title": float("inf")}}, "mapping.defaults.title: inf is not JSON"),
        (
            {"date_format": "epoch_ms", "defaults": {"created": float("nan")}},
            "mapping.defaults.created: nan is not JSON (a number must be finite)",
        ),
        (
            {"fields": {**described()["fields"], "title": ".".join(["x"] * 33)}},
            "mapping.fields.title: client path 'x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x"
            ".x.x.x.x.x.'... is 33 names deep (at most 32)",
        ),
        (
            {"status": {"field": "s" * 513, "values": VALUES}},
            "mapping.status.field: client path 'ssssssssssssssssssssssssssssssssssssssssssssssssss"
            "ssssssssss'... is 513 characters long (at most 512)",
        ),
        ({"constants": {"meta" + ".m" * 40: 1}}, "mapping.constants.meta.m.m.m.m.m.m.m.m.m"),
        ({"defaults": {"d" + ".d" * 40: 1}}, "names deep (at most 32)"),
        (
            {"defaults": {"nowhere": 1}},
            "mapping.defaults.nowhere: 'nowhere' is not a client field this mapping reads",
        ),
        ({"defaults": {"id": 1}}, "mapping.defaults.id: number cannot have a default"),
        ({"defaults": {"status": "SHUT"}}, "mapping.defaults.status: 'SHUT' is not one of"),
        ({"defaults": {"created": "yesterday"}}, "mapping.defaults.created: not an ISO 8601"),
        (
            {"order": ["id", "nope", "id"]},
            "mapping.order.1: 'nope' is not a client path this "
            "mapping writes; mapping.order.2: 'id' is listed twice",
        ),
        (
            {"fields": {"number": "id", "title": "", "created_at": "c", "updated_at": "u"}},
            "mapping.fields.title.path: '' is not a client path",
        ),
        (
            {
                "fields": {
                    "number": {"path": "id", "required": False},
                    "title": "t",
                    "created_at": "c",
                    "updated_at": "u",
                }
            },
            "mapping.fields.number.required: number cannot be optional",
        ),
        (
            {
                "fields": {
                    "number": "id",
                    "title": "t",
                    "created_at": "c",
                    "updated_at": "u",
                    "deleted_at": "d",
                }
            },
            "mapping.fields.deleted_at: needs fields.deleted",
        ),
        (
            {"fields": {"number": "id", "title": "t", "created_at": "c"}},
            "mapping.fields.updated_at: required key is missing",
        ),
        # A field said twice could say two things; the reader would keep one without a word
        # (found by a hostile tester: a traceback for the first, silent misreadings for the rest).
        ({"date_format": "%Y-%m-%d %H:%M:%S (%Y)"}, "%Y: appears more than once"),
        ({"date_format": "%Y-%m-%d %H:%M %B"}, "%m and %B: the month said twice"),
        ({"date_format": "%d/%m/%Y %H:%M %p"}, "%p with %H: AM/PM goes with a 12-hour %I"),
        ({"date_format": "%d/%m/%Y %H:%I"}, "%H and %I: the hour said twice"),
    ],
)
def test_descriptions_that_cannot_work_are_refused(changes: dict[str, Any], message: str) -> None:
    text = refusal(described(**changes))
    assert text.startswith(WHERE + ": mapping."), text
    assert message in text, text


def test_a_path_32_names_deep_is_fine_and_deeper_tables_are_refused() -> None:
    deep = ".".join(f"n{i}" for i in range(32))
    m = mapping(fields={**described()["fields"], "title": deep})
    record = m.encode(order())
    assert m.decode(record).title == "Replace belt"
    nested: dict[str, Any] = {"leaf": 1}
    for _ in range(300):  # TOML tables nested far deeper than a path may go
        nested = {"t": nested}
    assert "names deep (at most 32)" in refusal(described(constants=nested))


def test_a_schema_that_cannot_be_compiled_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fastjsonschema

    def broken(_schema: Any) -> Any:
        raise fastjsonschema.JsonSchemaDefinitionException("too deep")

    monkeypatch.setattr(fastjsonschema, "compile", broken)
    assert refusal(described()) == (
        f"{WHERE}: mapping: its record schema cannot be compiled "
        "(JsonSchemaDefinitionException: too deep)"
    )


def test_every_problem_is_listed() -> None:
    description = described(date_format="nope", timezone="Nowhere", unknown=1)
    description["status"]["values"]["DONE"] = "done2"
    text = refusal(description)
    for key in ("mapping.unknown", "mapping.status.values.DONE"):
        assert key in text, text
    # Once the shape is right, every inconsistency is listed too.
    text = refusal(described(date_format="nope", timezone="Nowhere", order=["x"]))
    assert text.count("; ") == 2, text
    for key in ("mapping.timezone", "mapping.date_format", "mapping.order.0"):
        assert key in text, text


def test_not_a_table_is_refused() -> None:
    assert refusal(["x"]) == f"{WHERE}: mapping: expected a table, got list"


def test_the_example_and_the_builtin_description_load() -> None:
    load_mapping(example_description(), where=str(EXAMPLE))
    load_mapping(BUILTIN, where="builtin")
