"""What the ERP was seen to hold during this process's runs: the newest last-update instant of
each work-order number the reader saw the ERP change (applied, stale or refused alike; not our
own writes read back). The sink never writes an older TracOS version over one of them, so a
copy inbound refused (a future date, a record TracOS would not store) is not overwritten by an
older one in the same run, even by an ERP that does not make its writes conditional."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracos_sync.mapping import RecordMapping


class ErpVersions:
    def __init__(self, mapping: RecordMapping) -> None:
        self._mapping = mapping  # reads a raw record's key in the client's own format
        self._newest: dict[int, datetime] = {}

    def forget(self) -> None:
        """A new inbound pass: what the ERP holds now is read again (a date it corrected back)."""
        self._newest.clear()

    def saw(self, number: int, stamp: datetime) -> None:
        held = self._newest.get(number)
        if held is None or stamp > held:
            self._newest[number] = stamp

    def saw_raw(self, item: Any) -> tuple[datetime, int] | None:
        """A record that did not decode: remembered when its number and last update can be
        read; returns its key (last update, number) then."""
        key = self._mapping.key_of(item)
        if key is not None:
            self.saw(key[1], key[0])
        return key

    def holds_newer(self, number: int, stamp: datetime) -> bool:
        return self.newer_than(number, stamp) is not None

    def newer_than(self, number: int, stamp: datetime) -> datetime | None:
        """The last update of the ERP's copy of ``number`` when it is later than ``stamp``."""
        held = self._newest.get(number)
        return held if held is not None and held > stamp else None
