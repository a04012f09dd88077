"""Wall-clock times in a zone to UTC, fast: the zone's offset is looked up once per hour of the
calendar that has one offset only (no daylight-saving change in it, neither skipped nor
repeated), then each time of that hour is one subtraction. Every other hour (a change, the ends
of the calendar) is the caller's to convert the exact, slow way. A pattern date is read this
way for every record: this halves its cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# Hours remembered per zone; past that the memory starts afresh (a feed's dates cluster).
MAX_HOURS = 8192

_UNKNOWN = timedelta.max  # never an offset

# datetime's seven arguments: year, month, day, hour, minute, second, microsecond.
Wall = tuple[int, int, int, int, int, int, int]


class HourOffsets:
    """One zone's offset for each hour looked up so far (None: the hour has a change)."""

    __slots__ = ("_hours", "_zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._hours: dict[tuple[int, int, int, int], timedelta | None] = {}

    def to_utc(self, wall: Wall) -> datetime | None:
        """The instant of a wall time (datetime's seven arguments), at millisecond precision;
        None when its hour has a daylight-saving change or it is at the ends of the calendar
        (convert it the slow way). ``ValueError`` for a date or time that does not exist (30
        February, hour 24)."""
        year, month, day, hour, minute, second, micro = wall
        key = (year, month, day, hour)
        offset = self._hours.get(key, _UNKNOWN)
        if offset is _UNKNOWN:
            offset = self._offset_of(year, month, day, hour)
            if len(self._hours) >= MAX_HOURS:
                self._hours.clear()
            self._hours[key] = offset
        utc = datetime(year, month, day, hour, minute, second, micro - micro % 1000, tzinfo=UTC)
        if offset is None:
            return None
        try:
            return utc - offset
        except OverflowError:
            return None

    def _offset_of(self, year: int, month: int, day: int, hour: int) -> timedelta | None:
        """The hour's one offset, or None if it has two (or none) anywhere in it."""
        try:
            start = datetime(year, month, day, hour, tzinfo=self._zone)
        except ValueError:
            return None  # not a day of the calendar: the caller's datetime says so
        end = start.replace(minute=59, second=59, microsecond=999_999)
        try:
            offsets = {
                moment.replace(fold=fold).utcoffset() for moment in (start, end) for fold in (0, 1)
            }
        except (OverflowError, ValueError):
            return None
        if len(offsets) != 1:
            return None
        (offset,) = offsets
        return offset
