from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from bson.datetime_ms import DatetimeMS

from tracos_sync.domain.dates import (
    InvalidDate,
    coerce_instant,
    format_instant,
    normalise,
    parse_instant,
)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2024-05-01T12:00:00Z", UTC, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00+00:00", UTC, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T09:00:00-03:00", UTC, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:30:00+02:30", UTC, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", UTC, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T09:00:00", SAO_PAULO, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00Z", UTC, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00", UTC, datetime(2024, 5, 1, 12, tzinfo=UTC)),
        # microseconds are truncated to BSON's milliseconds
        ("2024-05-01T12:00:00.123999Z", UTC, datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.5Z", UTC, datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", UTC, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", UTC, datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_instant(text: str, tz: ZoneInfo, expected: datetime) -> None:
    parsed = parse_instant(text, tz)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("yesterday", "date and time required"),
        ("2024-05-01", "date and time required"),
        ("", "date and time required"),
        ("2024-13-01T00:00:00Z", "not an ISO 8601"),
        ("2024-05-01T25:00:00Z", "not an ISO 8601"),
        ("2024-05-01T12:00:00+25:00", "not an ISO 8601"),
        ("0001-01-01T00:00:00+01:00", "outside the representable range"),
        ("9999-12-31T23:00:00-03:00", "outside the representable range"),
    ],
)
def test_parse_instant_rejects_with_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidDate, match=reason):
        parse_instant(text)


def test_coerce_accepts_bson_dates_strings_and_epoch_milliseconds() -> None:
    naive_utc = datetime(2024, 5, 1, 12, 0, 0, 999999)
    assert coerce_instant(naive_utc) == datetime(2024, 5, 1, 12, 0, 0, 999000, tzinfo=UTC)
    aware = datetime(2024, 5, 1, 9, tzinfo=timezone(timedelta(hours=-3)))
    assert coerce_instant(aware) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert coerce_instant("2024-05-01T12:00:00Z") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    # Epoch milliseconds, as some writers store them: an instant, never "older than anything".
    assert coerce_instant(1714564800000) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert coerce_instant(1714564800123.9) == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert coerce_instant(DatetimeMS(-62135596800000)) == datetime(1, 1, 1, tzinfo=UTC)
    for bad in (None, True, b"2024", [2024], {"$date": 1}):
        with pytest.raises(InvalidDate, match="expected a date"):
            coerce_instant(bad)
    for out_of_range in (10**20, -(10**20), DatetimeMS(-62135596800001), float("nan")):
        with pytest.raises(InvalidDate, match="epoch milliseconds"):
            coerce_instant(out_of_range)


def test_outbound_dates_always_have_four_digit_years() -> None:
    assert format_instant(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"
    assert format_instant(datetime(999, 12, 31, 23, 59, tzinfo=UTC)) == "0999-12-31T23:59:00.000Z"
    assert parse_instant(format_instant(datetime(42, 3, 4, tzinfo=UTC))) == datetime(
        42, 3, 4, tzinfo=UTC
    )


def test_format_instant_is_utc_iso_with_milliseconds() -> None:
    value = datetime(2024, 5, 1, 9, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-3)))
    assert format_instant(value) == "2024-05-01T12:00:00.123Z"
    assert parse_instant(format_instant(value)) == normalise(value)


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-10T14:22:05\x00",
        "2025-03-10T14:22:05\x00Z",
        "2025-03-10T15:00:00Z\n",
        "\t2025-03-10T15:00:00Z",
    ],
)
def test_a_date_with_a_control_character_is_refused_not_cleaned(text: str) -> None:
    # fromisoformat read "…:05\x00" as "…:05", and strip() took newlines and tabs off: the
    # value was changed without a word (a hostile pass). Spaces around it are still tolerated.
    with pytest.raises(InvalidDate, match="control character"):
        parse_instant(text)
    assert parse_instant(" 2025-03-10T15:00:00Z ") == parse_instant("2025-03-10T15:00:00Z")
