"""Date formats: how a client writes an instant, read and written (``base.py`` says what every
format is). ``date_format`` gives the one a description names."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from .base import EPOCH_MS, EPOCH_S, ISO8601, MAX_DATE_CHARS, ODATA_V2, DateFormat, localise
from .named import EpochDates, IsoDates, ODataDates
from .pattern import PatternDates
from .pattern_rules import ALLOWED, checked_pattern

__all__ = [
    "ALLOWED",
    "EPOCH_MS",
    "EPOCH_S",
    "ISO8601",
    "MAX_DATE_CHARS",
    "ODATA_V2",
    "DateFormat",
    "EpochDates",
    "IsoDates",
    "ODataDates",
    "PatternDates",
    "date_format",
    "localise",
]


def date_format(name: str, zone: ZoneInfo) -> DateFormat:
    """The format ``name`` names; raises ``ValueError`` saying why it cannot be used."""
    if name == ISO8601:
        return IsoDates(zone)
    if name in (EPOCH_MS, EPOCH_S):
        return EpochDates(name)
    if name == ODATA_V2:
        return ODataDates()
    return checked_pattern(name, zone)
