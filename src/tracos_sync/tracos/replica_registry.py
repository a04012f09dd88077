"""``ReplicaRegistry`` on MongoDB: a document per replica in ``REGISTRY``, one collection of
MONGO_DATABASE whatever the replicas' LEASE_COLLECTION, saying which lease collection the
replica uses, which TracOS collections it serves, and since when it serves them (or that it
waits). A fixed name, not a setting: a registry that could be mis-set would not find a mis-set
LEASE_COLLECTION. Expiry is judged by the server's clock, as the leases'."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError
from pymongo.write_concern import WriteConcern

from tracos_sync.domain.ports import Registration

from .retry import Retrier

Doc = dict[str, Any]
T = TypeVar("T")
REGISTRY = "sync_replicas"
NOW_MS: Doc = {"$toLong": "$$NOW"}
# A replica that died without unregistering is forgotten a day later (its entry counts for one
# TTL after its heartbeat expired, then is only clutter).
FORGOTTEN_AFTER_MS = 24 * 3600 * 1000


class MongoReplicaRegistry:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        leases: str,
        collections: Sequence[str],
        retrier: Retrier,
        *,
        attempt_seconds: float | None = None,
    ) -> None:
        """``leases``: this replica's LEASE_COLLECTION; ``collections``: the TracOS collections
        it serves ("database.collection", unique per integration)."""
        db = client[database]
        concern = WriteConcern(**{**db.write_concern.document, "j": True})
        self._registry: AsyncCollection[Doc] = db.get_collection(REGISTRY, write_concern=concern)
        self._leases = leases
        self._collections = sorted(set(collections))
        self._retrier = retrier
        self._attempt_seconds = attempt_seconds
        self._swept = False

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            with pymongo.timeout(self._attempt_seconds):
                return await operation()

        return await self._retrier.call(what, attempt)

    async def register(self, replica: str, ttl: float, *, serving: bool) -> datetime | None:
        if not self._swept:
            await self._forget_the_long_dead()
        # Serving since its first registration as serving, unless its heartbeat lapsed in
        # between (a replica frozen, or cut off, past its TTL): it starts over, and a replica
        # of another lease collection that began serving meanwhile is the earlier one.
        kept = {"$ifNull": ["$servingSince", "$$NOW"]}
        lapsed = {"$not": [{"$gt": [{"$toLong": "$expiresAt"}, NOW_MS]}]}
        since: Any = {"$cond": [lapsed, "$$NOW", kept]} if serving else None
        update = [
            {
                "$set": {
                    "leases": self._leases,
                    "collections": {"$literal": self._collections},
                    "ttl": ttl,
                    "seenAt": "$$NOW",
                    "expiresAt": {"$add": ["$$NOW", int(ttl * 1000)]},
                    "servingSince": since,
                }
            }
        ]
        doc = await self._call(
            "register this replica",
            lambda: self._registry.find_one_and_update(
                {"_id": replica}, update, upsert=True, return_document=ReturnDocument.AFTER
            ),
        )
        found = (doc or {}).get("servingSince")
        return found if isinstance(found, datetime) else None

    async def elsewhere(self) -> list[Registration]:
        expires_ms = {"$toLong": "$expiresAt"}
        counted_until = {"$add": [expires_ms, {"$multiply": [{"$ifNull": ["$ttl", 0]}, 1000]}]}
        pipeline: list[Doc] = [
            {
                "$match": {
                    "leases": {"$ne": self._leases},
                    "collections": {"$in": self._collections},
                    # Live, or serving until a TTL ago: its last leases may still be held.
                    "$expr": {
                        "$or": [
                            {"$gt": [expires_ms, NOW_MS]},
                            {
                                "$and": [
                                    {"$ne": [{"$ifNull": ["$servingSince", None]}, None]},
                                    {"$gt": [counted_until, NOW_MS]},
                                ]
                            },
                        ]
                    },
                }
            },
            {"$sort": {"_id": 1}},
        ]

        async def read() -> list[Doc]:
            return await (await self._registry.aggregate(pipeline)).to_list()

        docs = await self._call("read the replica registry", read)
        mine = set(self._collections)
        return [
            Registration(
                str(doc["_id"]),
                str(doc.get("leases")),
                tuple(sorted(mine.intersection(doc.get("collections") or ()))),
                doc["servingSince"] if isinstance(doc.get("servingSince"), datetime) else None,
            )
            for doc in docs
        ]

    async def unregister(self, replica: str) -> None:
        await self._call(
            "unregister this replica", lambda: self._registry.delete_one({"_id": replica})
        )

    async def _forget_the_long_dead(self) -> None:
        """Once per process: entries of replicas that died a day ago or more."""
        self._swept = True
        stale = {
            "$expr": {
                "$lt": [{"$toLong": "$expiresAt"}, {"$subtract": [NOW_MS, FORGOTTEN_AFTER_MS]}]
            }
        }
        with contextlib.suppress(PyMongoError):  # clutter only: never worth a failure
            await self._registry.delete_many(stale)
