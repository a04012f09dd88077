"""``strftime`` patterns as date formats: written as the pattern says, read back only in the
exact shape the pattern writes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tracos_sync.domain.dates import InvalidDate, format_instant, normalise

from .base import DateFormat, kind, localise
from .offsets import HourOffsets, Wall

DIRECTIVE = re.compile(r"%(.)")


class PatternDates(DateFormat):
    """A ``strftime``/``strptime`` pattern, read and written in the zone (a pattern with ``%z``
    reads the offset it carries). Written at the pattern's precision: without ``%S`` the seconds
    are dropped."""

    def __init__(self, pattern: str, zone: ZoneInfo) -> None:
        self.name = pattern
        self._zone = zone
        # %Y spelled out: strftime writes year 1 as "1", not "0001", on glibc.
        self._parts = _split_years(pattern)
        self._shape = _shape(pattern)
        # Numbers only (no names, no offset): read from the shape's groups and written with
        # str.format, three times faster than strptime and strftime.
        self._numeric = _numeric(pattern)
        self._offsets = HourOffsets(zone)

    def parse(self, value: Any) -> datetime:
        if not isinstance(value, str):
            raise InvalidDate(f"expected a date string like {self.name!r}, got {kind(value)}")
        match = self._shape.fullmatch(value)
        if match is None:
            # strptime alone would take "4/11/2018 1:5" for "%d/%m/%Y %H:%M", and read
            # "2024111" for "%Y%m%d" one way of two: numbers are read as they are written.
            raise InvalidDate(
                f"not a date in the format {self.name!r} (each number at its full width, "
                f"zero-padded): {value!r:.60}"
            )
        try:
            if self._numeric is not None:
                values = _values(self._numeric[0], match.groups())
                fast = self._offsets.to_utc(values)
                if fast is not None:
                    return fast
                parsed = datetime(*values)
            else:
                parsed = datetime.strptime(value, self.name)
        except ValueError:
            # Numbers at their full width, but not a day of the calendar (SAP's "00000000").
            raise InvalidDate(
                f"not a date in the format {self.name!r}: {value!r:.60} (no such date or time: "
                "a year from 0001, a month 01-12, a day its month has, a time of day)"
            ) from None
        if parsed.tzinfo is None:
            return _local_to_utc(parsed, self._zone)
        return normalise(parsed)

    def format(self, value: datetime) -> str:
        try:
            local = value.astimezone(self._zone)
        except (OverflowError, ValueError):
            raise self._unwritable(value) from None
        if self._numeric is not None:
            text = self._numeric[1].format(local)
        else:
            text = "".join(
                f"{local.year:04d}" if part is None else local.strftime(part)
                for part in self._parts
            )
        if local.year in (1, 9999):
            # At the ends of the calendar what is written at the pattern's precision may read
            # back as an instant outside it (truncated below year 1 in UTC): refused too.
            try:
                self.parse(text)
            except InvalidDate:
                raise self._unwritable(value) from None
        return text

    def _unwritable(self, value: datetime) -> InvalidDate:
        return InvalidDate(
            f"{format_instant(value)} cannot be written in {self._zone.key} as {self.name}"
            " (its local time is outside years 1-9999)"
        )

    def schema(self) -> dict[str, Any]:
        return {"$ref": "#/definitions/dateTime"}


def _local_to_utc(naive: datetime, zone: ZoneInfo) -> datetime:
    """``normalise(localise(naive, zone))`` with one conversion fewer (every date read goes
    through it); anything unusual (a skipped time, the ends of the calendar) takes that path,
    for its exact result and message."""
    try:
        utc = naive.replace(tzinfo=zone).astimezone(UTC)
        if utc.astimezone(zone).replace(tzinfo=None) == naive:
            return utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    except (OverflowError, ValueError):
        pass
    return normalise(localise(naive, zone))


# What each directive may match when read: numbers exactly as wide as they are written; names
# and offsets as strptime reads them (any case; %z also as Z or +02:00).
_SHAPES = {
    "Y": r"\d{4}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "H": r"\d{2}",
    "I": r"\d{2}",
    "M": r"\d{2}",
    "S": r"\d{2}",
    "f": r"\d{6}",
    "z": r"(?:[Zz]|[+-]\d{2}:?\d{2}(?::?\d{2}(?:\.\d{6})?)?)",
    "p": r"[A-Za-z]+",
    "b": r"[A-Za-z]+",
    "B": r"[A-Za-z]+",
    "%": "%",
}


# The numeric directives: the datetime attribute each is, and how it is written.
_NUMBERS = {
    "Y": ("year", "04d"),
    "m": ("month", "02d"),
    "d": ("day", "02d"),
    "H": ("hour", "02d"),
    "M": ("minute", "02d"),
    "S": ("second", "02d"),
    "f": ("microsecond", "06d"),
}


def _numeric(pattern: str) -> tuple[tuple[int, ...], str] | None:
    """For a pattern of numbers only: the place among datetime's arguments of each group of its
    shape, and the ``str.format`` template that writes it. None for a pattern with names or an
    offset."""
    codes = DIRECTIVE.findall(pattern)
    if any(code not in _NUMBERS and code != "%" for code in codes):
        return None
    fields = []
    template = []
    start = 0
    for match in DIRECTIVE.finditer(pattern):
        template.append(_braces(pattern[start : match.start()]))
        code = match.group(1)
        if code == "%":
            template.append("%")
        else:
            name, spec = _NUMBERS[code]
            fields.append(name)
            template.append(f"{{0.{name}:{spec}}}")
        start = match.end()
    template.append(_braces(pattern[start:]))
    return tuple(_SLOTS.index(name) for name in fields), "".join(template)


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


_SLOTS = ("year", "month", "day", "hour", "minute", "second", "microsecond")


def _values(slots: tuple[int, ...], groups: tuple[str | Any, ...]) -> Wall:
    """datetime's seven arguments from a numeric pattern's groups (``slots``: each group's place
    among them)."""
    values = [1, 1, 1, 0, 0, 0, 0]
    for slot, group in zip(slots, groups, strict=True):
        values[slot] = int(group)
    year, month, day, hour, minute, second, micro = values
    return year, month, day, hour, minute, second, micro


def _shape(pattern: str) -> re.Pattern[str]:
    """The regular expression of the values ``pattern`` writes (directives already checked),
    each number a group."""
    out = []
    start = 0
    for match in DIRECTIVE.finditer(pattern):
        out.append(re.escape(pattern[start : match.start()]))
        code = match.group(1)
        shape = _SHAPES.get(code, ".+?")
        out.append(f"({shape})" if code in _NUMBERS else shape)
        start = match.end()
    out.append(re.escape(pattern[start:]))
    # ASCII: \d would take any Unicode digit (fullwidth ones), read by strptime as ASCII ones.
    return re.compile("".join(out), re.ASCII)


def _split_years(pattern: str) -> list[str | None]:
    """The pattern cut at each ``%Y`` (None), ``%%`` left alone."""
    parts: list[str | None] = []
    start = 0
    for match in DIRECTIVE.finditer(pattern):
        if match.group(1) == "Y":
            if match.start() > start:
                parts.append(pattern[start : match.start()])
            parts.append(None)
            start = match.end()
    if start < len(pattern):
        parts.append(pattern[start:])
    return parts
