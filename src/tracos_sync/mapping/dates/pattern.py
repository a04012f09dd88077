"""``strftime`` patterns as date formats: written as the pattern says, read back only in the
exact shape the pattern writes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tracos_sync.domain.dates import InvalidDate, format_instant, normalise

from .base import DateFormat, kind, localise

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

    def parse(self, value: Any) -> datetime:
        if not isinstance(value, str):
            raise InvalidDate(f"expected a date string like {self.name!r}, got {kind(value)}")
        if self._shape.fullmatch(value) is None:
            # strptime alone would take "4/11/2018 1:5" for "%d/%m/%Y %H:%M", and read
            # "2024111" for "%Y%m%d" one way of two: numbers are read as they are written.
            raise InvalidDate(
                f"not a date in the format {self.name!r} (each number at its full width, "
                f"zero-padded): {value!r:.60}"
            )
        try:
            parsed = datetime.strptime(value, self.name)
        except ValueError:
            raise InvalidDate(f"not a date in the format {self.name!r}: {value!r:.60}") from None
        if parsed.tzinfo is None:
            parsed = localise(parsed, self._zone)
        return normalise(parsed)

    def format(self, value: datetime) -> str:
        try:
            local = value.astimezone(self._zone)
        except (OverflowError, ValueError):
            raise self._unwritable(value) from None
        text = "".join(
            f"{local.year:04d}" if part is None else local.strftime(part) for part in self._parts
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


def _shape(pattern: str) -> re.Pattern[str]:
    """The regular expression of the values ``pattern`` writes (directives already checked)."""
    out = []
    start = 0
    for match in DIRECTIVE.finditer(pattern):
        out.append(re.escape(pattern[start : match.start()]))
        out.append(_SHAPES.get(match.group(1), ".+?"))
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
