"""The description's dates: its time zone and date format, resolved and checked; and what the
record schema and a default's check need of them."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..dates import MAX_DATE_CHARS, DateFormat, IsoDates, date_format
from .checks import Checks


def resolve_dates(
    timezone: str | None, format_name: str, default_timezone: str, checks: Checks
) -> tuple[DateFormat, ZoneInfo]:
    """The format dates are written in, in the zone naive times are read in (the description's
    own zone, else ``default_timezone``). ISO 8601 in UTC stands in for one that fails."""
    if timezone is not None and not timezone.strip():
        checks.fail("timezone", "empty (leave the key out for the default zone)")
    name = timezone or default_timezone
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        checks.fail("timezone", f"unknown time zone {name!r:.60} (use an IANA name such as UTC)")
        zone = ZoneInfo("UTC")
    try:
        return date_format(format_name, zone), zone
    except ValueError as exc:
        checks.fail("date_format", str(exc))
        return IsoDates(zone), zone


def date_definition(dates: DateFormat) -> dict[str, Any]:
    """The schema's ``dateTime`` definition: what a date string of this format is."""
    if isinstance(dates, IsoDates):
        text = (
            "ISO 8601 date-time. With an offset or Z it is exact; without one it is read in "
            "the mapping's time zone."
        )
    else:
        text = f"A date-time in the format {dates.name!r}, in the mapping's time zone."
    return {"description": text, "type": "string", "maxLength": MAX_DATE_CHARS}
