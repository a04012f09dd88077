"""What the ERP was seen to hold during this process's runs: the newest ``lastUpdateDate`` of
each orderNo the source read (applied, stale or refused alike). The sink never ``PUT``s an
older TracOS version over one of them, so a copy inbound refused (a future date, a record TracOS
would not store) is not overwritten by an older one in the same run, even by an ERP that does
not make its writes conditional (409)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from tracos_sync.domain.dates import InvalidDate, parse_instant


class ErpVersions:
    def __init__(self, naive_tz: tzinfo = UTC) -> None:
        self._tz = naive_tz  # a naive lastUpdateDate is read in CLIENT_TIMEZONE
        self._newest: dict[int, datetime] = {}

    def forget(self) -> None:
        """A new inbound pass: what the ERP holds now is read again (a date it corrected back)."""
        self._newest.clear()

    def saw(self, number: int, stamp: datetime) -> None:
        held = self._newest.get(number)
        if held is None or stamp > held:
            self._newest[number] = stamp

    def saw_raw(self, item: Any) -> tuple[datetime, int] | None:
        """A record that did not decode: remembered when its number and date can be read;
        returns its key (``lastUpdateDate``, ``orderNo``) then."""
        key = raw_key(item, self._tz)
        if key is not None:
            self.saw(key[1], key[0])
        return key

    def holds_newer(self, number: int, stamp: datetime) -> bool:
        held = self._newest.get(number)
        return held is not None and held > stamp


def raw_key(item: Any, naive_tz: tzinfo = UTC) -> tuple[datetime, int] | None:
    """(lastUpdateDate, orderNo) of a raw record, when both can be read."""
    if not isinstance(item, dict):
        return None
    number, stamp = item.get("orderNo"), item.get("lastUpdateDate")
    if not isinstance(number, int) or isinstance(number, bool) or not isinstance(stamp, str):
        return None
    try:
        return parse_instant(stamp, naive_tz), number
    except (InvalidDate, ValueError):
        return None
