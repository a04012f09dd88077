"""Date normalisation: every instant entering the service becomes UTC at millisecond precision.

BSON dates hold milliseconds, so truncating on entry means a value read back from MongoDB compares
equal to the value we wrote; comparing "newer" on unequal precisions would misfire.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo

# fromisoformat accepts a bare date ("2024-05-01"); a work-order timestamp must carry a time.
_HAS_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}")


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


def parse_instant(text: str, naive_tz: tzinfo = UTC) -> datetime:
    """Parse an ISO 8601 date-time string (offset, ``Z`` or naive) into normalised UTC."""
    if not isinstance(text, str):
        raise InvalidDate(f"expected an ISO 8601 date-time string, got {type(text).__name__}")
    candidate = text.strip()
    if not _HAS_TIME.match(candidate):
        raise InvalidDate(f"not an ISO 8601 date-time (date and time required): {text!r:.60}")
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError as exc:
        raise InvalidDate(f"not an ISO 8601 date-time: {text!r:.60}") from exc
    return normalise(parsed, naive_tz)


def coerce_instant(value: object, naive_tz: tzinfo = UTC) -> datetime:
    """A datetime (as BSON gives) or an ISO string (as other writers store), normalised."""
    if isinstance(value, datetime):
        return normalise(value, naive_tz)
    if isinstance(value, str):
        return parse_instant(value, naive_tz)
    raise InvalidDate(f"expected a date, got {type(value).__name__}")


def format_instant(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``: ``2024-05-01T12:00:00.000Z``."""
    utc = normalise(value)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
