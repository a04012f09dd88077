"""The MongoDB repository against a real server: conditional marks, idempotence, indexes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from tests.builders import T0, tracos_doc
from tests.conftest import failpoint
from tests.server import Server
from tracos_sync.domain.errors import FatalError
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import PendingExport
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def order(number: int, updated: datetime = T0, title: str = "t") -> WorkOrder:
    return WorkOrder(number, Status.PENDING, title, T0 - timedelta(days=1), updated)


@pytest.fixture
async def repo(server: Server) -> AsyncIterator[MongoWorkOrderRepository]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri, tz_aware=True)
    repository = MongoWorkOrderRepository(
        client, f"r_{uuid.uuid4().hex[:10]}", "workorders", Retrier(2)
    )
    await repository.prepare()
    yield repository
    await client.drop_database(repository.raw_collection.database.name)
    await repository.close()


async def _pending(repo: MongoWorkOrderRepository, size: int = 100) -> list[Any]:
    return [item async for page in repo.pending(size) for item in page]


async def test_mark_is_conditional_on_the_version_exported(repo: MongoWorkOrderRepository) -> None:
    await repo.raw_collection.insert_many(
        [tracos_doc(1), tracos_doc(2, updatedAt="2024-05-01T12:00:00Z")]
    )
    exports = await _pending(repo)
    assert [e.order.number for e in exports] == [1, 2]
    # Number 1 is edited in TracOS between export and mark.
    await repo.raw_collection.update_one(
        {"number": 1}, {"$set": {"updatedAt": T0 + timedelta(seconds=1), "title": "edited"}}
    )
    assert await repo.mark_synced(exports, NOW) == 1
    one = await repo.raw_collection.find_one({"number": 1})
    two = await repo.raw_collection.find_one({"number": 2})
    assert one is not None and "isSynced" not in one
    assert two is not None and two["isSynced"] is True and two["syncedAt"] == NOW
    again = await _pending(repo)
    assert [e.order.title for e in again] == ["edited"]


async def test_apply_is_idempotent_and_sequential(repo: MongoWorkOrderRepository) -> None:
    first = await repo.apply([order(1), order(2)], NOW)
    assert (first.inserted, first.updated, first.stale) == (2, 0, 0)
    again = await repo.apply([order(1), order(2)], NOW)
    assert (again.inserted, again.updated, again.stale) == (0, 0, 2)
    later = T0 + timedelta(hours=1)
    mixed = await repo.apply(
        [order(3), order(1, later, "newer"), order(3, T0 - timedelta(hours=1)), order(1, T0)], NOW
    )
    assert (mixed.inserted, mixed.updated, mixed.stale) == (1, 1, 2)
    doc = await repo.raw_collection.find_one({"number": 1})
    assert doc is not None and doc["title"] == "newer" and doc["updatedAt"] == later
    assert await repo.raw_collection.count_documents({}) == 3


async def test_pages_cover_every_unsynced_document_once(repo: MongoWorkOrderRepository) -> None:
    await repo.raw_collection.insert_many(
        [tracos_doc(n, isSynced=n % 3 == 0) if n % 2 else tracos_doc(n) for n in range(1, 26)]
    )
    pages = [page async for page in repo.pending(4)]
    assert all(len(page) <= 4 for page in pages)
    numbers = [item.order.number for page in pages for item in page]
    expected = [n for n in range(1, 26) if not (n % 2 and n % 3 == 0)]
    assert sorted(numbers) == expected
    assert len(numbers) == len(set(numbers))
    assert all(isinstance(item, PendingExport) for page in pages for item in page)


async def test_indexes_unique_number_and_unsynced(repo: MongoWorkOrderRepository) -> None:
    indexes = {
        tuple(ix["key"].items()): ix async for ix in await repo.raw_collection.list_indexes()
    }
    assert indexes[(("number", 1),)].get("unique") is True
    assert (("isSynced", 1), ("_id", 1)) in indexes
    for spec in indexes.values():
        assert "partialFilterExpression" not in spec


def test_duplicate_numbers_or_non_unique_index_stop_with_a_clear_error(
    server: Server, mongo: MongoClient[dict[str, Any]]
) -> None:
    import asyncio

    name = f"d_{uuid.uuid4().hex[:10]}"
    mongo[name]["workorders"].insert_many([tracos_doc(1), tracos_doc(1)])
    mongo[name]["plain"].create_index("number")

    async def prepare(collection: str) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri)
        try:
            await MongoWorkOrderRepository(client, name, collection, Retrier(1)).prepare()
        finally:
            await client.close()

    with pytest.raises(FatalError, match="same number"):
        asyncio.run(prepare("workorders"))
    with pytest.raises(FatalError, match="not unique"):
        asyncio.run(prepare("plain"))
    mongo.drop_database(name)


async def test_a_write_tried_again_first_rebuilds_a_lost_number_index(
    repo: MongoWorkOrderRepository, mongo: MongoClient[dict[str, Any]]
) -> None:
    """A server that restarted may have lost an index it had built but not yet flushed (the
    campaign saw SecantusDB do so when killed): a write tried again after a failure looks for the
    unique index first, so a number that exists is updated, never inserted a second time."""
    await repo.apply([order(1)], NOW)
    await repo.raw_collection.drop_index([("number", 1)])  # as a restart that lost it would
    # Twice: the driver tries a write once more by itself; ours is the next try.
    with failpoint(mongo, 2, failCommands=["insert"], closeConnection=True):
        result = await repo.apply([order(1, T0 + timedelta(hours=1), "newer")], NOW)
    assert (result.inserted, result.updated) == (0, 1)
    assert await repo.raw_collection.count_documents({"number": 1}) == 1


async def test_every_write_first_rebuilds_a_number_index_dropped_since_the_last(
    repo: MongoWorkOrderRepository,
) -> None:
    """The index is looked for before every write, not once per run or sweep: a run (or a watch
    sweep following a flow of files) writes batch after batch, and another tool may drop the
    index between two of them. Without it, a number that exists would be inserted again."""
    await repo.apply([order(1)], NOW)
    await repo.raw_collection.drop_index([("number", 1)])  # another tool, between two batches
    result = await repo.apply([order(1, T0 + timedelta(hours=1), "newer"), order(2)], NOW)
    assert (result.inserted, result.updated) == (1, 1)
    assert await repo.raw_collection.count_documents({"number": 1}) == 1
    indexes = [ix async for ix in await repo.raw_collection.list_indexes()]
    assert any(ix["key"] == {"number": 1} and ix.get("unique") for ix in indexes)
