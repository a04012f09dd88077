"""Date formats: how a client writes an instant, read and written.

Everything read becomes UTC at millisecond precision (``domain.dates.normalise``). A client time
without an offset is read in the mapping's time zone: one that does not exist there (the hour a
spring-forward skips) is refused, and one that exists twice (the hour a fall-back repeats) is the
earlier instant (``fold=0``), which is what every zoneinfo-aware library does by default.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tracos_sync.domain.dates import (
    InvalidDate,
    format_instant,
    from_epoch_ms,
    normalise,
    parse_instant,
)

ISO8601 = "iso8601"
EPOCH_MS = "epoch_ms"
EPOCH_S = "epoch_s"
MAX_DATE_CHARS = 64  # as the wire contract always said: a date is a short string
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"})
_DIRECTIVE = re.compile(r"%(.)")


def _kind(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else type(value).__name__


def localise(naive: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in ``zone`` as an aware datetime; refused when the zone skipped it."""
    aware = naive.replace(tzinfo=zone)  # fold=0: the earlier of two instants a fall-back repeats
    try:
        back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    except (OverflowError, ValueError):
        return aware  # at the ends of the calendar; normalise says what is wrong
    if back != naive:
        raise InvalidDate(
            f"{naive.isoformat(sep=' ')} does not exist in {zone.key} "
            "(skipped by a daylight-saving change)"
        )
    return aware


class DateFormat(ABC):
    """One way of writing instants, both directions."""

    name: str

    @abstractmethod
    def parse(self, value: Any) -> datetime:
        """The instant, normalised; raises ``InvalidDate`` with a readable reason."""

    @abstractmethod
    def format(self, value: datetime) -> Any:
        """The client's value for an instant; raises ``InvalidDate`` for one this format cannot
        write (an instant near the ends of the calendar whose local time falls outside years
        1-9999)."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """The JSON Schema of one value (the type gate before ``parse``)."""

    def lenient(self, value: Any) -> datetime | None:
        try:
            return self.parse(value)
        except (InvalidDate, ValueError, TypeError, OverflowError):
            return None


class IsoDates(DateFormat):
    """ISO 8601: exact with an offset or ``Z``, read in the zone without; written as UTC with
    milliseconds and ``Z`` (``format_instant``), whatever the zone."""

    name = ISO8601

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._may_skip = zone.key not in _UTC_ZONES  # no time is skipped in UTC: fast path

    def parse(self, value: Any) -> datetime:
        instant = parse_instant(value, self._zone)
        if self._may_skip:
            wall = datetime.fromisoformat(value.strip())  # valid: parse_instant took it
            if wall.tzinfo is None:
                localise(wall, self._zone)
        return instant

    def format(self, value: datetime) -> str:
        return format_instant(value)

    def schema(self) -> dict[str, Any]:
        return {"$ref": "#/definitions/dateTime"}


class EpochDates(DateFormat):
    """A JSON integer of milliseconds (``epoch_ms``) or seconds (``epoch_s``) since
    1970-01-01T00:00:00Z; seconds are written truncated (floor)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._unit = timedelta(milliseconds=1) if name == EPOCH_MS else timedelta(seconds=1)
        self._ms = 1 if name == EPOCH_MS else 1000
        self._words = "milliseconds" if name == EPOCH_MS else "seconds"

    def parse(self, value: Any) -> datetime:
        if type(value) is not int:
            raise InvalidDate(
                f"expected an integer number of {self._words} since 1970-01-01T00:00:00Z, "
                f"got {_kind(value)}"
            )
        try:
            return from_epoch_ms(value * self._ms)
        except InvalidDate:
            raise InvalidDate(
                f"epoch {self._words} {value!r:.30} are outside years 1-9999"
            ) from None

    def format(self, value: datetime) -> int:
        return (value - _EPOCH) // self._unit

    def schema(self) -> dict[str, Any]:
        return {"type": "integer"}


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
            raise InvalidDate(f"expected a date string like {self.name!r}, got {_kind(value)}")
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
    for match in _DIRECTIVE.finditer(pattern):
        out.append(re.escape(pattern[start : match.start()]))
        out.append(_SHAPES.get(match.group(1), ".+?"))
        start = match.end()
    out.append(re.escape(pattern[start:]))
    return re.compile("".join(out))


def _split_years(pattern: str) -> list[str | None]:
    """The pattern cut at each ``%Y`` (None), ``%%`` left alone."""
    parts: list[str | None] = []
    start = 0
    for match in _DIRECTIVE.finditer(pattern):
        if match.group(1) == "Y":
            if match.start() > start:
                parts.append(pattern[start : match.start()])
            parts.append(None)
            start = match.end()
    if start < len(pattern):
        parts.append(pattern[start:])
    return parts


# The directives a pattern may use: each written in one fixed form and read back to the same
# field. %b, %B and %p are English names: the service never changes LC_TIME from the C locale
# (checked when a pattern uses them).
ALLOWED = frozenset("YmdHIMSfzpbB%")
# Why the others are refused, for the message.
_REFUSED = {
    "Z": "a zone name (BST, CEST) cannot be read back, use %z (+0100)",
    "y": "a two-digit year cannot be read back for every year, use %Y",
    "a": "a weekday is not checked against the date when read, leave it out",
    "A": "a weekday is not checked against the date when read, leave it out",
    "w": "a weekday is not checked against the date when read, leave it out",
    "u": "a weekday is not checked against the date when read, leave it out",
    "j": "a day of the year duplicates %m and %d, use them",
    "U": "a week number duplicates %m and %d, use them",
    "W": "a week number duplicates %m and %d, use them",
    "V": "an ISO week duplicates %m and %d, use them",
    "G": "an ISO week-year is not the calendar year, use %Y",
    "c": "a locale's date and time depends on the locale, spell the parts out",
    "x": "a locale's date depends on the locale (and has a two-digit year), spell it out",
    "X": "a locale's time depends on the locale, spell it out (%H:%M:%S)",
}
# Instants a pattern must write and read back (at its precision): winter and summer on both
# hemispheres, seconds and milliseconds, and the early and late years.
_SAMPLES = (
    datetime(2024, 1, 15, 10, 4, 5, 7000, tzinfo=UTC),
    datetime(2024, 7, 15, 22, 58, 59, 999_000, tzinfo=UTC),
    datetime(2024, 11, 23, 19, 8, 9, 7000, tzinfo=UTC),
    datetime(1, 1, 2, 12, 0, 1, 1000, tzinfo=UTC),
    datetime(9999, 12, 30, 12, 59, 58, 998_000, tzinfo=UTC),
)
_NAMES = {"b": "Jan", "B": "January", "p": "AM"}


def _directive_problems(name: str, directives: set[str]) -> list[str]:
    problems = [
        f"%{code}: {_REFUSED.get(code, 'not a directive a pattern may use')}"
        for code in sorted(directives - ALLOWED)
    ]
    if problems:
        return problems
    # One field, said once: a value that says it twice can say two things, and the reader
    # would keep one of them without a word (``2024-05-01 January``, ``14:00 AM``).
    codes = _DIRECTIVE.findall(name)
    problems += [
        f"%{code}: appears more than once"
        for code in sorted({c for c in codes if c != "%" and codes.count(c) > 1})
    ]
    for field, alternatives in (("the month", "mbB"), ("the hour", "HI")):
        used = [f"%{code}" for code in alternatives if code in directives]
        if len(used) > 1:
            problems.append(f"{' and '.join(used)}: {field} said twice")
    if "p" in directives and "H" in directives:
        problems.append("%p with %H: AM/PM goes with a 12-hour %I")
    if problems:
        return problems
    sample = datetime(2024, 1, 1, 9)
    for code, english in _NAMES.items():
        if code in directives and sample.strftime(f"%{code}") != english:
            problems.append(
                f"%{code}: needs English names, and LC_TIME gives "
                f"{sample.strftime(f'%{code}')!r} here (use numbers)"
            )
    return problems


def _at_precision(value: datetime, zone: ZoneInfo, directives: set[str]) -> datetime:
    """``value`` as a pattern with ``directives`` writes it, truncated in local time."""
    local = value.astimezone(zone)
    # Each unit counts only under the coarser ones: %S without %M is no precision of seconds.
    minutes = "M" in directives
    seconds = minutes and "S" in directives
    wall = local.replace(
        minute=local.minute if minutes else 0,
        second=local.second if seconds else 0,
        microsecond=local.microsecond if seconds and "f" in directives else 0,
    )
    return normalise(wall)


def date_format(name: str, zone: ZoneInfo) -> DateFormat:
    """The format ``name`` names; raises ``ValueError`` saying why it cannot be used."""
    if name == ISO8601:
        return IsoDates(zone)
    if name in (EPOCH_MS, EPOCH_S):
        return EpochDates(name)
    directives = set(_DIRECTIVE.findall(name))
    if not directives:
        raise ValueError(
            f"unknown date format {name!r} (expected iso8601, epoch_ms, epoch_s "
            "or a strftime pattern such as '%d/%m/%Y %H:%M')"
        )
    refused = _directive_problems(name, directives)
    if refused:
        allowed = " ".join(f"%{code}" for code in "YmdHIMSfzpbB%")
        raise ValueError(
            f"date format {name!r} cannot use {' and '.join(refused)} "
            f"(a pattern may use: {allowed})"
        )
    lacking = [
        what
        for what, needs in (
            ("a year (%Y)", {"Y"}),
            ("a month (%m, %b or %B)", {"m", "b", "B"}),
            ("a day (%d)", {"d"}),
            ("an hour (%H, or %I with %p)", {"H", "I"}),
        )
        if not directives & needs
    ]
    if "I" in directives and "p" not in directives:
        lacking.append("%p with %I")
    if lacking:
        raise ValueError(f"date format {name!r} lacks {', '.join(lacking)}")
    pattern = PatternDates(name, zone)
    for sample in _SAMPLES:
        try:
            written = pattern.format(sample)
            back = pattern.parse(written)
        except (ValueError, InvalidDate) as exc:
            raise ValueError(f"date format {name!r} cannot be read back: {exc}") from None
        expected = _at_precision(sample, zone, directives)
        if back != expected:
            raise ValueError(
                f"date format {name!r} cannot be read back: {format_instant(sample)} is written "
                f"{written!r}, read back as {format_instant(back)} (expected "
                f"{format_instant(expected)})"
            )
    return pattern
