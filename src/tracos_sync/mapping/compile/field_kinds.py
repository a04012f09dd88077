"""What a TracOS field's entry in ``fields`` compiles to besides its place: the key's format
(``prefix``, ``width``), the deleted flag's encoding (``true``, ``false``), a date's own format
or its time field (``format``, ``time``, ``time_format``). A registry TracOS field -> builder;
each builder refuses, at its key, what would not read back what it writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from ..dates import DateFormat, PatternDates, date_format
from ..flags import FlagCodec
from ..instants import JOIN, DateTimePair, Instant, InstantField
from ..keys import MAX_WIDTH, FormattedKey, IntegerKey, KeyCodec
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
    key = f"fields.{name}"
    own = dates
    if field.format is not None:
        try:
            own = date_format(field.format, zone)
        except ValueError as exc:
            checks.fail(f"{key}.format", str(exc))
    if field.time is None:
        if field.time_format is not None:
            checks.fail(f"{key}.time_format", "needs time (the client path of the time)")
        return InstantField(field.path, own, own is not dates)
    checks.use(field.time, f"{key}.time")
    if field.time_format is None:
        checks.fail(f"{key}.time", "needs time_format (the time's strftime pattern)")
        return InstantField(field.path, own, True)
    if not isinstance(own, PatternDates):
        checks.fail(
            f"{key}.format",
            f"a date with its time in another field needs a strftime pattern for the date, "
            f"not {own.name!r}",
        )
        return InstantField(field.path, own, True)
    if JOIN in own.name + field.time_format:
        checks.fail(f"{key}.time_format", "a pattern cannot hold the character U+001F")
        return InstantField(field.path, own, True)
    try:
        joined = date_format(own.name + JOIN + field.time_format, zone)
    except ValueError as exc:
        message = (
            str(exc)
            .replace(repr(own.name + JOIN + field.time_format), "")
            .replace("date format  ", "the date and time formats ")
        )
        checks.fail(key, f"{own.name!r} + {field.time_format!r}: {message}")
        return InstantField(field.path, own, True)
    assert isinstance(joined, PatternDates)
    return DateTimePair(field.path, field.time, joined, own.name, field.time_format)
