"""What a date pattern may be: the directives it may use (each written in one fixed form and
read back to the same field), the fields it must hold, and the instants it must write and read
back at its precision."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tracos_sync.domain.dates import InvalidDate, format_instant, normalise

from .pattern import DIRECTIVE, PatternDates

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
    codes = DIRECTIVE.findall(name)
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


def checked_pattern(name: str, zone: ZoneInfo) -> PatternDates:
    """The pattern ``name`` as a date format; raises ``ValueError`` saying why it cannot be
    used."""
    directives = set(DIRECTIVE.findall(name))
    if not directives:
        raise ValueError(
            f"unknown date format {name!r} (expected iso8601, epoch_ms, epoch_s, odata_v2 "
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
