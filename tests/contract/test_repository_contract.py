"""One contract for every ``WorkOrderRepository``: MongoDB and the in-memory fake."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from pymongo import AsyncMongoClient

from tests.builders import T0, tracos_doc
from tests.fakes import InMemoryWorkOrderRepository
from tests.server import Server
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import PendingExport, UnreadableDocument, WorkOrderRepository
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier

NOW = datetime(2024, 6, 1, tzinfo=UTC)


class Store(Protocol):
    repo: WorkOrderRepository

    async def insert_raw(self, doc: dict[str, Any]) -> None: ...

    async def find(self, number: int) -> dict[str, Any] | None: ...

    async def edit(self, number: int, fields: dict[str, Any]) -> None: ...


class MongoStore:
    def __init__(self, repo: MongoWorkOrderRepository) -> None:
        self.repo = repo
        self._col = repo.raw_collection

    async def insert_raw(self, doc: dict[str, Any]) -> None:
        await self._col.insert_one(dict(doc))

    async def find(self, number: int) -> dict[str, Any] | None:
        return await self._col.find_one({"number": number})

    async def edit(self, number: int, fields: dict[str, Any]) -> None:
        await self._col.update_one({"number": number}, {"$set": fields})


class MemoryStore:
    def __init__(self) -> None:
        self.repo = InMemoryWorkOrderRepository()

    async def insert_raw(self, doc: dict[str, Any]) -> None:
        self.repo.insert_raw(doc)

    async def find(self, number: int) -> dict[str, Any] | None:
        return self.repo.by_number(number)

    async def edit(self, number: int, fields: dict[str, Any]) -> None:
        doc = self.repo.by_number(number)
        assert doc is not None
        doc.update(fields)


@pytest.fixture(params=["mongo", "memory"])
async def store(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri, tz_aware=True)
    repo = MongoWorkOrderRepository(client, f"c_{uuid.uuid4().hex[:10]}", "w", Retrier(5))
    await repo.prepare()
    yield MongoStore(repo)
    await client.drop_database(repo.raw_collection.database.name)
    await client.close()


def order(number: int, updated: datetime = T0, title: str = "t") -> WorkOrder:
    return WorkOrder(number, Status.PENDING, title, T0 - timedelta(days=1), updated)


async def pending(repo: WorkOrderRepository, size: int = 3) -> list[Any]:
    return [item async for page in repo.pending(size) for item in page]


async def test_newer_only_and_sequential(store: Store) -> None:
    repo = store.repo
    first = await repo.apply([order(1), order(2)], NOW)
    assert (first.inserted, first.updated, first.stale) == (2, 0, 0)
    later = T0 + timedelta(minutes=1)
    result = await repo.apply([order(1, later, "new"), order(1, T0), order(2, T0)], NOW)
    assert (result.inserted, result.updated, result.stale) == (0, 1, 2)
    one = await store.find(1)
    assert one is not None and one["title"] == "new" and one["isSynced"] is True


async def test_string_dates_compare_as_instants(store: Store) -> None:
    await store.insert_raw(tracos_doc(5, updatedAt="2024-05-01T09:00:00-03:00"))
    stale = await store.repo.apply([order(5, T0)], NOW)
    newer = await store.repo.apply([order(5, T0 + timedelta(milliseconds=1), "n")], NOW)
    assert (stale.stale, newer.updated) == (1, 1)


async def test_pending_covers_unsynced_once_and_flags_unreadable(store: Store) -> None:
    for n in range(1, 8):
        await store.insert_raw(tracos_doc(n, isSynced=(n == 3)))
    await store.insert_raw(tracos_doc(9, status="exploded"))
    items = await pending(store.repo)
    exports = [i for i in items if isinstance(i, PendingExport)]
    assert sorted(e.order.number for e in exports) == [1, 2, 4, 5, 6, 7]
    assert [i.reason for i in items if isinstance(i, UnreadableDocument)] == [
        "unknown status 'exploded'"
    ]


async def test_marks_are_conditional_on_the_exported_version(store: Store) -> None:
    await store.insert_raw(tracos_doc(1))
    await store.insert_raw(tracos_doc(2))
    exports = [i for i in await pending(store.repo) if isinstance(i, PendingExport)]
    await store.edit(2, {"updatedAt": T0 + timedelta(seconds=5)})
    assert await store.repo.mark_synced(exports, NOW) == 1
    left = [i.order.number for i in await pending(store.repo)]
    assert left == [2]


async def test_seed_stores_absent_numbers_unsynced_and_reports_backlog_age(store: Store) -> None:
    assert not await store.repo.holds_work_orders()
    assert await store.repo.oldest_unsynced_age() is None
    await store.insert_raw(tracos_doc(2, title="kept"))
    stored = await store.repo.seed([order(1), order(2, title="sample")])
    assert stored == 1
    assert await store.repo.holds_work_orders()
    one, two = await store.find(1), await store.find(2)
    assert one is not None and "isSynced" not in one, "stored as TracOS writes it: unsynced"
    assert two is not None and two["title"] == "kept", "an existing number is left alone"
    age = await store.repo.oldest_unsynced_age()
    assert age is not None and age >= (datetime.now(UTC) - T0).total_seconds() - 5


async def test_refuses_what_it_cannot_store_and_applies_the_rest(store: Store) -> None:
    await store.insert_raw(tracos_doc(3, updatedAt="garbage", isSynced=True))
    bad_text = order(1, title="bad \ud800")
    result = await store.repo.apply([bad_text, order(2), order(3, T0 + timedelta(days=9))], NOW)
    assert result.inserted == 1
    assert {r.position for r in result.refused} == {0, 2}
    assert await store.find(1) is None
    assert (await store.find(3) or {})["title"] != "t", "an unreadable version is not older"


async def test_an_order_dated_after_not_after_is_stale_when_held_else_refused(store: Store) -> None:
    ahead = NOW + timedelta(days=1)
    await store.insert_raw(tracos_doc(1, updatedAt=ahead, isSynced=True, title="held"))
    orders = [order(1, ahead, "again"), order(2, ahead), order(3), order(1, NOW, "older")]
    result = await store.repo.apply(orders, NOW, not_after=NOW)
    assert (result.inserted, result.stale) == (1, 2)
    assert [r.position for r in result.refused] == [1]
    assert "in the future" in result.refused[0].reason
    assert await store.find(2) is None, "never written"
    assert (await store.find(1) or {})["title"] == "held"


async def test_an_edit_that_keeps_updated_at_misses_the_mark(store: Store) -> None:
    await store.insert_raw(tracos_doc(1))
    await store.insert_raw(tracos_doc(2))
    [page] = [page async for page in store.repo.pending(10)]
    exports = [item for item in page if isinstance(item, PendingExport)]
    await store.edit(1, {"title": "edited, same updatedAt"})
    assert await store.repo.mark_synced(exports, NOW) == 1
    assert (await store.find(1) or {}).get("isSynced") is not True
    assert (await store.find(2) or {}).get("isSynced") is True
