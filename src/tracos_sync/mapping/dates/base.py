"""What every date format is: one way of writing instants, read and written.

Everything read becomes UTC at millisecond precision (``domain.dates.normalise``). A client time
without an offset is read in the mapping's time zone: one that does not exist there (the hour a
spring-forward skips) is refused, and one that exists twice (the hour a fall-back repeats) is the
earlier instant (``fold=0``), which is what every zoneinfo-aware library does by default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tracos_sync.domain.dates import InvalidDate

ISO8601 = "iso8601"
EPOCH_MS = "epoch_ms"
EPOCH_S = "epoch_s"
ODATA_V2 = "odata_v2"
MAX_DATE_CHARS = 64  # as the wire contract always said: a date is a short string


def kind(value: Any) -> str:
    """What a value is, for a message (a boolean is not an int there)."""
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
