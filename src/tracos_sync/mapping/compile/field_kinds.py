"""What a TracOS field's entry in ``fields`` compiles to besides its place: the key's format
(``prefix``, ``width``), the deleted flag's encoding (``true``, ``false``), a date's own format
or its time field (``format``, ``time``, ``time_format``). A registry TracOS field -> builder;
each builder refuses, at its key, what would not read back what it writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from tracos_sync.domain.dates import format_instant

from ..dates import DateFormat, PatternDates, date_format
from ..flags import FlagCodec
from ..instants import JOIN, DateTimePair, Instant, InstantField
from ..keys import MAX_WIDTH, FormattedKey, IntegerKey, KeyCodec
from ..said import json_text
from ..spec import FieldSpec
from .checks import Checks


@dataclass(frozen=True, slots=True)
class FieldKinds:
    """The compiled kinds of a description's fields."""

    key: KeyCodec
    deleted: FlagCodec | None
    instants: dict[str, Instant]  # created_at, updated_at, deleted_at (when described)


# The options of a field entry, and the TracOS fields that may use them.
OPTIONS = {
    "prefix": ("number",),
    "width": ("number",),
    "true": ("deleted",),
    "false": ("deleted",),
    "format": ("created_at", "updated_at", "deleted_at"),
    "time": ("created_at", "updated_at", "deleted_at"),
    "time_format": ("created_at", "updated_at", "deleted_at"),
    "no_date": ("created_at", "updated_at", "deleted_at"),
    "no_time": ("created_at", "updated_at", "deleted_at"),
}


def field_kinds(
    fields: dict[str, FieldSpec], dates: DateFormat, zone: ZoneInfo, checks: Checks
) -> FieldKinds | None:
    """Each described field's codec; None when a problem was added."""
    before = checks.found()
    for name, field in fields.items():
        for option, users in OPTIONS.items():
            if getattr(field, option) is not None and name not in users:
                checks.fail(f"fields.{name}.{option}", f"only {', '.join(users)} may say {option}")
    key = _key(fields["number"], checks)
    deleted = _flag(fields["deleted"], "fields.deleted", checks) if "deleted" in fields else None
    instants: dict[str, Instant] = {
        name: _instant(name, fields[name], dates, zone, checks)
        for name in ("created_at", "updated_at", "deleted_at")
        if name in fields
    }
    if checks.found() > before:
        return None
    return FieldKinds(key, deleted, instants)


def _key(field: FieldSpec, checks: Checks) -> KeyCodec:
    if field.prefix is None and field.width is None:
        return IntegerKey()
    if field.width is not None and not 1 <= field.width <= MAX_WIDTH:
        checks.fail("fields.number.width", f"{field.width} digits: a width is 1 to {MAX_WIDTH}")
        return IntegerKey()
    return FormattedKey(field.prefix or "", field.width)


def flag_codec(true: Any, false: Any, key: str, checks: Checks) -> FlagCodec:
    """The encoding of a boolean, refused when true and false cannot be told apart."""
    if type(true) is type(false) and true == false:
        checks.fail(key, f"true and false are both {true!r}: a flag read back must say which")
    return FlagCodec(true, false)


def _flag(field: FieldSpec, key: str, checks: Checks) -> FlagCodec:
    if field.true is None and field.false is None:
        return FlagCodec()
    if field.true is None or field.false is None:
        checks.fail(key, "give both true and false (the values written for each)")
        return FlagCodec()
    return flag_codec(field.true, field.false, key, checks)


def _instant(
    name: str, field: FieldSpec, dates: DateFormat, zone: ZoneInfo, checks: Checks
) -> Instant:
    instant = _instant_kind(name, field, dates, zone, checks)
    key = f"fields.{name}"
    if field.no_time is not None and (field.time is None or field.no_date is None):
        checks.fail(f"{key}.no_time", "needs time and no_date (the date's value for no date)")
    elif field.no_date is None:
        return instant
    elif isinstance(instant, DateTimePair):
        if not isinstance(field.no_date, str) or field.no_time is None:
            checks.fail(
                f"{key}.no_date",
                "a date and its time: give no_date and no_time, both strings "
                '("00000000" and "000000")',
            )
            return instant
        instant.no_date, instant.no_time = field.no_date, field.no_time
    elif isinstance(instant, InstantField):
        instant.no_date = field.no_date
    read_as = instant.as_date(instant.none)
    if read_as is not None:
        checks.fail(
            f"{key}.no_date",
            f"{json_text(instant.none)} reads as the date {format_instant(read_as)}: the value "
            "for no date must be one no date is written as",
        )
    return instant


def _instant_kind(
    name: str, field: FieldSpec, dates: DateFormat, zone: ZoneInfo, checks: Checks
) -> Instant:
    key = f"fields.{name}"
    if field.time is not None:
        return _pair(key, field, field.time, zone, checks) or InstantField(field.path, dates, True)
    if field.time_format is not None:
        checks.fail(f"{key}.time_format", "needs time (the client path of the time)")
    if field.format is None:
        return InstantField(field.path, dates, False)
    try:
        return InstantField(field.path, date_format(field.format, zone), True)
    except ValueError as exc:
        checks.fail(f"{key}.format", str(exc))
        return InstantField(field.path, dates, False)


def _pair(
    key: str, field: FieldSpec, time: str, zone: ZoneInfo, checks: Checks
) -> DateTimePair | None:
    """A date and its time: two patterns checked as one (together they hold a year, a month,
    a day and an hour, and read back what they write)."""
    checks.use(time, f"{key}.time")
    date, clock = field.format, field.time_format
    if date is None or clock is None:
        lacking = " and ".join(
            what
            for what, given in (("format (the date's pattern)", date), ("time_format", clock))
            if given is None
        )
        checks.fail(f"{key}.time", f"needs {lacking}: a date and its time are read by patterns")
        return None
    if JOIN in date + clock:
        checks.fail(f"{key}.time_format", "a pattern cannot hold the character U+001F")
        return None
    joined = date + JOIN + clock
    try:
        pattern = date_format(joined, zone)
    except ValueError as exc:
        message = str(exc).replace(f"date format {joined!r} ", "")
        checks.fail(key, f"date {date!r} with time {clock!r}: {message}".replace(JOIN, " "))
        return None
    if not isinstance(pattern, PatternDates):  # a named format cannot be two fields
        checks.fail(f"{key}.format", f"{date!r} is not a strftime pattern")
        return None
    return DateTimePair(field.path, time, pattern, date, clock)
