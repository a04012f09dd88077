"""In-memory fakes of the TracOS-side ports, each held to the same contract suite as its MongoDB
implementation: ``WorkOrderRepository`` (tests/contract/test_repository_contract.py) and
``ConnectorStateStore`` (tests/contract/test_state_store_contract.py)."""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tracos_sync.domain.dates import InvalidDate, coerce_instant
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import (
    ApplyResult,
    DeadLetter,
    HealthCheck,
    PendingExport,
    RefusedOrder,
    UnreadableDocument,
)
from tracos_sync.tracos.documents import (
    EXPORTED_FIELDS,
    UnreadableDocumentError,
    insert_document,
    native_document,
    read_document,
    storage_problem,
    update_fields,
)
from tracos_sync.tracos.state import payload_text


class InMemoryWorkOrderRepository:
    def __init__(self) -> None:
        self.documents: dict[int, dict[str, Any]] = {}  # by _id, in insertion order
        self._ids = itertools.count(1)

    def insert_raw(self, doc: dict[str, Any]) -> None:
        """Put a document as another writer would (any shape)."""
        self.documents[next(self._ids)] = dict(doc)

    def by_number(self, number: int) -> dict[str, Any] | None:
        return next((d for d in self.documents.values() if d.get("number") == number), None)

    async def prepare(self) -> None:
        """Nothing to index."""

    async def apply(
        self, orders: Sequence[WorkOrder], synced_at: datetime, not_after: datetime | None = None
    ) -> ApplyResult:
        inserted = updated = stale = 0
        refused: list[RefusedOrder] = []
        for position, order in enumerate(orders):
            current = self.by_number(order.number)
            if not_after is not None and order.updated_at > not_after:
                try:
                    held = current is not None and (
                        coerce_instant(current.get("updatedAt")) >= order.updated_at
                    )
                except InvalidDate:
                    held = False
                if held:
                    stale += 1
                else:
                    refused.append(RefusedOrder(position, "dated in the future"))
                continue
            problem = storage_problem(order)
            if problem is not None:
                refused.append(RefusedOrder(position, problem))
                continue
            if current is None:
                self.insert_raw(insert_document(order, synced_at))
                inserted += 1
                continue
            try:
                newer = order.updated_at > coerce_instant(current.get("updatedAt"))
            except InvalidDate as exc:
                refused.append(RefusedOrder(position, f"unreadable updatedAt ({exc})"))
                continue
            if newer:
                current.update(update_fields(order, synced_at))
                updated += 1
            else:
                stale += 1
        return ApplyResult(inserted, updated, stale, tuple(refused))

    async def pending(
        self, batch_size: int
    ) -> AsyncGenerator[list[PendingExport | UnreadableDocument], None]:
        waiting = [
            (key, doc) for key, doc in self.documents.items() if doc.get("isSynced") is not True
        ]
        for start in range(0, len(waiting), batch_size):
            page: list[PendingExport | UnreadableDocument] = []
            for key, doc in waiting[start : start + batch_size]:
                try:
                    page.append(PendingExport(read_document(doc), key, _exported(doc)))
                except UnreadableDocumentError as exc:
                    page.append(UnreadableDocument(f"_id={key}", str(exc)))
            yield page

    async def mark_synced(self, exports: Sequence[PendingExport], synced_at: datetime) -> int:
        marked = 0
        for export in exports:
            doc = self.documents.get(export.key)  # type: ignore[call-overload]
            if doc is not None and _exported(doc) == export.version:
                doc.update(isSynced=True, syncedAt=synced_at)
                marked += 1
        return marked

    async def health(self) -> list[HealthCheck]:
        return [HealthCheck("database", True, f"in memory, {len(self.documents)} documents")]

    async def holds_work_orders(self) -> bool:
        return bool(self.documents)

    async def seed(self, orders: Sequence[WorkOrder]) -> int:
        stored = 0
        for order in orders:
            if self.by_number(order.number) is None:
                self.insert_raw(native_document(order))
                stored += 1
        return stored

    async def oldest_unsynced_age(self) -> float | None:
        ages = []
        for doc in self.documents.values():
            if _exported_as_unsynced(doc.get("isSynced")):
                with contextlib.suppress(InvalidDate):
                    ages.append(datetime.now(UTC) - coerce_instant(doc.get("updatedAt")))
        return max(ages).total_seconds() if ages else None

    async def unsynced_changes(self) -> AsyncGenerator[bool, None]:
        raise NotImplementedError("an in-memory store cannot notify; callers poll")
        yield False  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        """Nothing to close."""


class InMemoryConnectorStateStore:
    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.letters: dict[str, dict[str, Any]] = {}  # by "<scope>:<key>"

    async def get(self, key: str) -> dict[str, Any] | None:
        state = self.states.get(key)
        return copy.deepcopy(state) if state is not None else None

    async def put(self, key: str, state: Mapping[str, Any]) -> None:
        self.states[key] = copy.deepcopy({k: v for k, v in state.items() if k != "_id"})

    async def dead_letter(self, letter: DeadLetter, at: datetime) -> int:
        entry = self.letters.setdefault(
            f"{letter.scope}:{letter.key}", {"scope": letter.scope, "firstAt": at, "count": 0}
        )
        entry.update(
            direction=letter.direction,
            ref=letter.ref,
            problems=[p.as_dict() for p in letter.problems],
            payload=payload_text(letter.payload),
            lastAt=at,
            count=entry["count"] + 1,
        )
        return int(entry["count"])

    async def count_dead_letters(self, scope: str) -> int:
        return sum(1 for entry in self.letters.values() if entry["scope"] == scope)

    def describe(self) -> str:
        return "in memory"


def _exported(doc: dict[str, Any]) -> dict[str, Any]:
    """What the mark is conditional on: every exported field as read (absent stays absent)."""
    return {name: doc[name] for name in EXPORTED_FIELDS if name in doc}


def _exported_as_unsynced(value: Any) -> bool:
    """As the repository's queries: false, missing, and odd numbers or strings."""
    return (
        value is None
        or value is False
        or (isinstance(value, (int, float, str)) and not isinstance(value, bool))
    )
