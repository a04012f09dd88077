"""One contract for every ``ConnectorStateStore``: MongoDB and the in-memory fake."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from pymongo import AsyncMongoClient

from tests.fakes import InMemoryConnectorStateStore
from tests.server import Server
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import ConnectorStateStore, DeadLetter
from tracos_sync.tracos.retry import Retrier
from tracos_sync.tracos.state import MAX_PAYLOAD_CHARS, MongoConnectorStateStore

T1 = datetime(2024, 6, 1, 12, tzinfo=UTC)


class Harness(Protocol):
    store: ConnectorStateStore

    async def entry(self, scope: str, key: str) -> dict[str, Any] | None: ...


class MongoHarness:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.store = MongoConnectorStateStore(client, database, "state", "letters", Retrier(5))
        self._letters = client[database]["letters"]

    async def entry(self, scope: str, key: str) -> dict[str, Any] | None:
        return await self._letters.find_one({"_id": f"{scope}:{key}"})


class MemoryHarness:
    def __init__(self) -> None:
        self.store = self._fake = InMemoryConnectorStateStore()

    async def entry(self, scope: str, key: str) -> dict[str, Any] | None:
        return self._fake.letters.get(f"{scope}:{key}")


@pytest.fixture(params=["mongo", "memory"])
async def harness(request: pytest.FixtureRequest, server: Server) -> AsyncIterator[Harness]:
    if request.param == "memory":
        yield MemoryHarness()
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        server.uri, tz_aware=True, tzinfo=UTC
    )
    database = f"s_{uuid.uuid4().hex[:10]}"
    yield MongoHarness(client, database)
    await client.drop_database(database)
    await client.close()


def letter(
    key: str = "k1", scope: str = "erp", reason: str = "bad", payload: Any = None
) -> DeadLetter:
    return DeadLetter(scope, key, "inbound", f"record {key}", [Problem("$.x", reason, 0)], payload)


async def test_state_is_stored_by_key_and_replaced_whole(harness: Harness) -> None:
    store = harness.store
    assert await store.get("a") is None
    await store.put("a", {"watermark": "2024-05-01T00:00:00.000Z", "at": [1, 2], "n": {"x": 1}})
    await store.put("b", {"other": True})
    assert await store.get("a") == {
        "watermark": "2024-05-01T00:00:00.000Z",
        "at": [1, 2],
        "n": {"x": 1},
    }
    await store.put("a", {"watermark": "2024-06-01T00:00:00.000Z"})
    assert await store.get("a") == {"watermark": "2024-06-01T00:00:00.000Z"}
    assert await store.get("b") == {"other": True}


async def test_what_get_returns_is_a_copy(harness: Harness) -> None:
    await harness.store.put("a", {"at": [1]})
    got = await harness.store.get("a")
    assert got is not None
    got["at"].append(2)
    assert await harness.store.get("a") == {"at": [1]}


async def test_the_same_refusal_is_one_entry_with_a_count_and_last_time(harness: Harness) -> None:
    store = harness.store
    assert await store.dead_letter(letter(payload={"orderNo": 1}), T1) == 1
    later = T1 + timedelta(hours=1)
    assert await store.dead_letter(letter(reason="still bad", payload={"orderNo": 1}), later) == 2
    assert await store.dead_letter(letter("k2"), T1) == 1
    assert await store.dead_letter(letter("k1", scope="other"), T1) == 1
    assert await store.count_dead_letters("erp") == 2
    assert await store.count_dead_letters("other") == 1
    assert await store.count_dead_letters("nobody") == 0
    entry = await harness.entry("erp", "k1")
    assert entry is not None
    assert (entry["count"], entry["firstAt"], entry["lastAt"]) == (2, T1, later)
    assert entry["problems"] == [{"record": 0, "path": "$.x", "reason": "still bad"}]
    assert (entry["direction"], entry["ref"]) == ("inbound", "record k1")
    assert entry["payload"] == '{"orderNo": 1}'


async def test_any_payload_and_text_can_be_kept(harness: Harness) -> None:
    """What a client sends may be huge or not valid Unicode: it is kept (cut), never refused."""
    odd = letter(reason="lone \ud800 surrogate", payload={"summary": "\ud800" + "x" * 200_000})
    assert await harness.store.dead_letter(odd, T1) == 1
    entry = await harness.entry("erp", "k1")
    assert entry is not None
    assert len(entry["payload"]) == MAX_PAYLOAD_CHARS
    assert entry["payload"].startswith('{"summary": "\\ud800xxx')
