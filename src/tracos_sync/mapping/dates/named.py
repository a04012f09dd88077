"""The formats named by a word: ISO 8601 strings and epoch numbers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tracos_sync.domain.dates import InvalidDate, format_instant, from_epoch_ms, parse_instant

from .base import EPOCH_MS, ISO8601, MAX_DATE_CHARS, ODATA_V2, DateFormat, kind, localise

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"})


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
                f"got {kind(value)}"
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


_ODATA = re.compile(r"/Date\((-?\d{1,15})([+-]\d{4})?\)/")


class ODataDates(DateFormat):
    """OData v2 (and .NET's JSON): ``"/Date(1741616525000)/"``, milliseconds since
    1970-01-01T00:00:00Z. An offset (``+0060``, in minutes) is only what the writer's zone was:
    the milliseconds are already UTC, so it is ignored (and not written back)."""

    name = ODATA_V2

    def parse(self, value: Any) -> datetime:
        match = _ODATA.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise InvalidDate(f"not an OData date like '/Date(1741616525000)/': {value!r:.60}")
        try:
            return from_epoch_ms(int(match.group(1)))
        except InvalidDate:
            raise InvalidDate(f"OData date {value!r:.40} is outside years 1-9999") from None

    def format(self, value: datetime) -> str:
        return f"/Date({(value - _EPOCH) // timedelta(milliseconds=1)})/"

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": MAX_DATE_CHARS}
