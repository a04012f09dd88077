"""Records the mapping refused, kept so that they are taken again once it reads them.

A record the mapping refuses is a dead letter, and the watermark moves past it: the next pass
does not read it again. Fixing the mapping would then not bring it back until someone edits it
in the ERP. So each refused record (its latest payload, by key) is also kept here, and each pass
first tries them through the current mapping: those it reads now are handed on as a unit of
their own (``RETAKEN``), before the first page, and applied as any record (TracOS's newer-only
rule decides, so an old payload never overwrites a later change); those TracOS takes are then
forgotten, and so is a key read again normally (a change made in the ERP since). Those the
mapping still refuses stay, quietly: their dead letter says why.

Kept through the ``ConnectorStateStore`` as one document, loaded once and saved when something
changed, at most ``max_entries`` records (the oldest dropped first: its dead letter keeps it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import ConnectorStateStore, InboundUnit
from tracos_sync.mapping import RecordMapping

from .echoes import SCOPE
from .watermark import PageHandle, Watermark, fingerprint

RETAKEN = "records refused before, read by the mapping now"
DEFAULT_MAX_ENTRIES = 1_000


class RefusedRecords:
    def __init__(
        self,
        store: ConnectorStateStore,
        api_url: str,
        mapping: RecordMapping,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._store = store
        self._key = f"{SCOPE}:refused:{api_url}"
        self._mapping = mapping
        self._max = max_entries
        self._records: dict[str, Any] = {}  # by key, oldest first
        self._loaded = False
        self._dirty = False

    async def load(self) -> None:
        """What earlier runs kept (once; later calls do nothing)."""
        if self._loaded:
            return
        self._loaded = True
        doc = await self._store.get(self._key) or {}
        for entry in doc.get("records", []):
            if isinstance(entry, list) and len(entry) == 2:
                self._records[str(entry[0])] = entry[1]

    async def save(self) -> None:
        if not self._dirty:
            return
        await self._store.put(self._key, {"records": [[k, v] for k, v in self._records.items()]})
        self._dirty = False

    def key_of(self, item: Any) -> str:
        """A refused record's key: its number when the mapping reads it, else its content's."""
        key = self._mapping.key_of(item)
        return str(key[1]) if key is not None else f"#{fingerprint(item)}"

    def keep(self, item: Any) -> None:
        """The mapping refused ``item``: kept (its latest payload) to be tried again."""
        key = self.key_of(item)
        self._records.pop(key, None)
        self._records[key] = item
        while len(self._records) > self._max:
            del self._records[next(iter(self._records))]
        self._dirty = True

    def readable(self) -> list[tuple[str, Any, WorkOrder]]:
        """The records kept that the mapping reads now: (key, payload, work order)."""
        found = []
        for key, item in self._records.items():
            try:
                found.append((key, item, self._mapping.decode(item)))
            except RecordRejected:
                continue  # still refused: its dead letter says why
        return found

    def taken(self, key: str) -> None:
        """``key`` was read (applied, or read again normally): nothing left to take again."""
        if self._records.pop(key, None) is not None:
            self._dirty = True


def retaken_unit(refused: RefusedRecords, start: Watermark) -> InboundUnit | None:
    """The records kept that the mapping reads now, as one unit that moves no watermark."""
    found = refused.readable()
    if not found:
        return None
    handle = PageHandle(raw=[item for _, item, _ in found], mark=start)
    handle.retaken = {index: key for index, (key, _, _) in enumerate(found)}
    records = [order for _, _, order in found]
    return InboundUnit(RETAKEN, records, handle=handle, positions=list(range(len(found))))


def settle(refused: RefusedRecords, units: Sequence[InboundUnit]) -> None:
    """Once ``units`` are applied: what the mapping refused kept; what TracOS took, and what
    was read as the ERP holds it now, forgotten."""
    for unit in units:
        handle = unit.handle
        assert isinstance(handle, PageHandle)
        problems = {problem.record for problem in unit.problems}
        for index, key in handle.retaken.items():
            if index not in problems:
                refused.taken(key)
        if not handle.retaken:
            for order in unit.records:
                refused.taken(str(order.number))
        for item in handle.refused.values():
            refused.keep(item)
