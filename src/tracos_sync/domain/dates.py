"""Date normalisation: every instant entering the service becomes UTC at millisecond precision.

BSON dates hold milliseconds, so truncating on entry means a value read back from MongoDB compares
equal to the value we wrote; comparing "newer" on unequal precisions would misfire.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol, runtime_checkable

# fromisoformat accepts a bare date ("2024-05-01"); a work-order timestamp must carry a time.
_HAS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@runtime_checkable
class _EpochMilliseconds(Protocol):
    """A stored date outside Python's range, as a driver hands it (e.g. bson's ``DatetimeMS``):
    milliseconds since the epoch behind ``__int__``."""

    def __int__(self) -> int: ...


class InvalidDate(ValueError):
    """A value that is not an ISO 8601 date-time we can place on the UTC timeline."""


def normalise(value: datetime, naive_tz: tzinfo = UTC) -> datetime:
    """``value`` as aware UTC truncated to milliseconds; a naive value is read in ``naive_tz``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=naive_tz)
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidDate("date is outside the representable range once converted to UTC") from exc
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_instant(text: str, naive_tz: tzinfo = UTC) -> datetime:
    """Parse an ISO 8601 date-time string (offset, ``Z`` or naive) into normalised UTC."""
    if not isinstance(text, str):
        raise InvalidDate(f"expected an ISO 8601 date-time string, got {type(text).__name__}")
    # datetime.fromisoformat reads "…:05\x00" as "…:05", and strip() took a newline off: a
    # control character anywhere is refused, spaces around the value tolerated.
    if _CONTROL.search(text):
        raise InvalidDate(f"a control character in a date: {text!r:.60}")
    candidate = text.strip(" ")
    if not _HAS_TIME.match(candidate):
        raise InvalidDate(f"not an ISO 8601 date-time (date and time required): {text!r:.60}")
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError as exc:
        raise InvalidDate(f"not an ISO 8601 date-time: {text!r:.60}") from exc
    return normalise(parsed, naive_tz)


def coerce_instant(value: object, naive_tz: tzinfo = UTC) -> datetime:
    """A stored instant, normalised: a datetime (as BSON gives), an ISO 8601 string (as other
    writers store), or epoch milliseconds (a number). Anything else raises ``InvalidDate``:
    an unreadable date must never compare as "older" than anything."""
    if isinstance(value, datetime):
        return normalise(value, naive_tz)
    if isinstance(value, str):
        return parse_instant(value, naive_tz)
    if isinstance(value, bool):
        raise InvalidDate("expected a date, got a boolean")
    if isinstance(value, int | float):
        return from_epoch_ms(value)
    if isinstance(value, _EpochMilliseconds):
        return from_epoch_ms(int(value))
    raise InvalidDate(f"expected a date, got {type(value).__name__}")


def from_epoch_ms(value: float) -> datetime:
    """Milliseconds since 1970-01-01T00:00:00Z, normalised; out of range raises ``InvalidDate``."""
    if not math.isfinite(value):
        raise InvalidDate(f"epoch milliseconds must be finite, got {value!r}")
    try:
        return normalise(_EPOCH + timedelta(milliseconds=value))
    except (OverflowError, ValueError) as exc:
        raise InvalidDate(f"epoch milliseconds {value!r:.30} are outside years 1-9999") from exc


def format_instant(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2024-05-01T12:00:00.000Z``."""
    u = normalise(value)
    # Spelled out rather than strftime: "%Y" gives "1", not "0001", for early years on glibc.
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def dated_ahead(stamp: datetime, now: datetime, allowance: timedelta) -> bool:
    """Whether a client's last update ``stamp`` lies beyond this host's ``now`` plus the clock
    skew ``allowance`` (CLIENT_CLOCK_SKEW_SECONDS): a date that cannot be true yet (a typo'd
    year, an ERP clock gone wrong), refused in every connector."""
    return stamp > now + allowance
