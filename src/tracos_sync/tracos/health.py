"""``check``'s view of the work-order collection: reachability and version, the indexes, the
unsynced backlog and the ``isSynced`` values other writers left."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from tracos_sync.domain.dates import InvalidDate, coerce_instant
from tracos_sync.domain.ports import HealthCheck

from .indexes import index_state
from .retry import describe

Doc = dict[str, Any]
# Unsynced means isSynced false or missing (null matches missing).
UNSYNCED: dict[str, Any] = {"isSynced": {"$in": [False, None]}}
# Documents whose isSynced is neither a boolean nor absent (null counts as absent).
ODD_IS_SYNCED: dict[str, Any] = {"isSynced": {"$exists": True, "$nin": [True, False, None]}}


async def collection_health(
    client: AsyncMongoClient[Doc], collection: AsyncCollection[Doc]
) -> list[HealthCheck]:
    """Reachability and version, indexes, and the unsynced backlog."""
    try:
        info = await client.server_info()
        indexes = [ix async for ix in await collection.list_indexes()]
        unsynced = await collection.count_documents(UNSYNCED)
        odd = await collection.count_documents(ODD_IS_SYNCED)
        oldest = await oldest_unsynced_age(collection)
        state = index_state(indexes)
        duplicate = None if state.number_unique else await _a_duplicate_number(collection)
    except PyMongoError as exc:
        return [HealthCheck("database", False, f"unreachable: {describe(exc)}")]
    age = "" if oldest is None else f", oldest waiting {oldest:,.0f} s"
    later = "not there yet; the first sync creates it"
    if state.number_problem is not None:
        number = HealthCheck("index on number", False, state.number_problem)
    elif duplicate is not None:
        number = HealthCheck(
            "index on number",
            False,
            f"missing, and it cannot be built: number {duplicate!r:.40} is held by several "
            "documents (merge them; no sync runs until then)",
        )
    else:
        number = HealthCheck("index on number", True, "unique" if state.number_unique else later)
    unsynced_ix = "present" if state.unsynced else later
    return [
        HealthCheck("database", True, f"reachable, server version {info.get('version')}"),
        number,
        HealthCheck("index for unsynced", True, unsynced_ix),
        HealthCheck("unsynced work orders", True, f"{unsynced} waiting{age}"),
        HealthCheck("isSynced values", True, _odd_detail(odd)),
    ]


async def _a_duplicate_number(collection: AsyncCollection[Doc]) -> Any:
    """A number held by several documents, or None. Only asked when no unique index makes
    it impossible (a full scan, as building that index would be)."""
    pipeline: list[dict[str, Any]] = [
        {"$group": {"_id": "$number", "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
        {"$limit": 1},
    ]
    async for found in await collection.aggregate(pipeline):
        return found["_id"]
    return None


async def oldest_unsynced_age(collection: AsyncCollection[Doc]) -> float | None:
    """Seconds since the oldest unsynced work order was last updated (None: none waiting)."""
    oldest: datetime | None = None
    async for doc in collection.find(UNSYNCED, {"updatedAt": 1}):
        with contextlib.suppress(InvalidDate):
            instant = coerce_instant(doc.get("updatedAt"))
            oldest = instant if oldest is None or instant < oldest else oldest
    return None if oldest is None else (datetime.now(UTC) - oldest).total_seconds()


def _odd_detail(odd: int) -> str:
    if not odd:
        return "all true, false or missing"
    return (
        f'{odd} documents hold a value other than true, false or missing (0, "false", ...):'
        " taken as not synced, exported, then marked true"
    )
