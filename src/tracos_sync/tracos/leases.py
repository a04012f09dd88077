"""``LeaseStore`` on MongoDB: a document per integration lease and one per live replica, in one
collection of TracOS's database, every change a conditional update judged by the server's clock.

Expiry is compared as milliseconds (``$toLong``) of ``$$NOW``, the server's clock, in the filter
of the very update that takes or renews: the check and the change are one single-document atomic
operation, on mongod as on a replica set's primary, with no transaction. Writes are journaled
(``j: true``), as the work orders: a lease must not outlive a crash of the server less durably
than the writes it fences.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from tracos_sync.domain.ports import Lease, LeaseRecord, ReplicaRecord

from .fencing import STAMP
from .indexes import STAMP_INDEX, STAMP_INDEX_OPTIONS, STAMPED, has_stamp_index
from .retry import Retrier

Doc = dict[str, Any]
T = TypeVar("T")
LEASE = "integration"
REPLICA = "replica"
NOW_MS: Doc = {"$toLong": "$$NOW"}


def _expired() -> Doc:
    """The stored lease has expired by the server's clock (or has no expiry)."""
    return {"$expr": {"$lte": [{"$toLong": {"$ifNull": ["$expiresAt", 0]}}, NOW_MS]}}


def _unexpired() -> Doc:
    return {"$expr": {"$gt": [{"$toLong": {"$ifNull": ["$expiresAt", 0]}}, NOW_MS]}}


def _expiry(ttl: float) -> Doc:
    return {"$add": ["$$NOW", int(ttl * 1000)]}


class MongoLeaseStore:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        collection: str,
        retrier: Retrier,
        attempt_seconds: float | None = None,
        *,
        stamped: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        """``attempt_seconds``: a deadline on each attempt of an operation (pymongo's client
        side timeout), so that a server that does not answer costs a round of the keeper, not
        the lease (None: the client's own timeouts). ``stamped``: per integration, the
        collections (database, collection) its fenced writes stamp; every take's epoch starts
        above every stamp there (``take``)."""
        self._client = client
        self._stamped = dict(stamped or {})
        db = client[database]
        concern = WriteConcern(**{**db.write_concern.document, "j": True})
        self._leases: AsyncCollection[Doc] = db.get_collection(collection, write_concern=concern)
        self._retrier = retrier
        self._attempt_seconds = attempt_seconds
        # The stamped collections whose stamp index was seen or made: listed once per process.
        self._indexed: set[tuple[str, str]] = set()

    async def _call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            with pymongo.timeout(self._attempt_seconds):
                return await operation()

        return await self._retrier.call(what, attempt)

    async def take(self, name: str, holder: str, ttl: float) -> Lease | None:
        # Free (given back), expired, or already this holder's (an answer lost on the way back:
        # taken again, with the next epoch, so that the lost one's epoch fences nothing of ours).
        free = {"$or": [{"holder": None}, {"holder": holder}, _expired()]}
        # Epochs count per lease document, stamps stay on the documents: every take starts
        # above every stamp already there. A new lease document (an integration renamed, the
        # lease collection dropped or changed) would otherwise have its holder's every write
        # refused forever; an old one, after a replica of another LEASE_COLLECTION served a
        # while (and stamped higher), each write to a document it stamped, one lost lease at
        # a time (G2 of the second hostile pass: seconds of stalled edits).
        floor = await self._highest_stamp(name)
        update = [
            {
                "$set": {
                    "kind": LEASE,
                    "name": name,
                    "holder": holder,
                    "epoch": {"$add": [{"$max": [{"$ifNull": ["$epoch", 0]}, floor]}, 1]},
                    "since": "$$NOW",
                    "renewedAt": "$$NOW",
                    "expiresAt": _expiry(ttl),
                }
            }
        ]

        async def take() -> Doc | None:
            try:
                return await self._leases.find_one_and_update(
                    {"_id": lease_id(name), **free},
                    update,
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:  # held by another: the upsert's insert met the lease
                return None

        doc = await self._call("take a lease", take)
        return None if doc is None else _lease(doc)

    async def _highest_stamp(self, name: str) -> int:
        """The highest epoch stamped in ``name``'s collections (a shared state collection's
        other stamps only raise it: harmless). Read at every take: one key of the partial index
        on the stamps (``indexes.STAMP_INDEX``), made here first when it is missing (a take may
        come before the integration's first sweep). Building it reads the collection once;
        every later read is one key, however large the collection (measured on SecantusDB at
        100,000 work orders: 2.4 s a scan, 0.02 s by the index)."""

        async def highest_in(database: str, collection: str) -> int:
            stamps = self._client[database][collection]

            async def read() -> Doc | None:
                if (database, collection) not in self._indexed:
                    if not has_stamp_index([ix async for ix in await stamps.list_indexes()]):
                        await stamps.with_options(
                            write_concern=self._leases.write_concern
                        ).create_index(STAMP_INDEX, **STAMP_INDEX_OPTIONS)
                    self._indexed.add((database, collection))
                return await stamps.find_one(STAMPED, {f"{STAMP}.epoch": 1}, sort=STAMP_INDEX)

            # Not held to one attempt's deadline: building the index on a large collection
            # takes what a scan does, once.
            doc = await self._retrier.call("read the highest stamp", read)
            return 0 if doc is None else int(doc[STAMP]["epoch"])

        # At once: read at every take, one round trip, not one per collection.
        found = await asyncio.gather(*(highest_in(*where) for where in self._stamped.get(name, ())))
        return max(found, default=0)

    async def renew(self, leases: Sequence[Lease], ttl: float) -> list[Lease | None]:
        """One journaled update for every lease, then one read of what it left: each lease
        still held (same holder, same epoch) and unexpired after the update was renewed by it
        (an expired one cannot become unexpired without a take, which changes its epoch)."""
        if not leases:
            return []
        held: Doc = {
            "$or": [
                {"_id": lease_id(lease.name), "holder": lease.holder, "epoch": lease.epoch}
                for lease in leases
            ]
        }
        update = [{"$set": {"renewedAt": "$$NOW", "expiresAt": _expiry(ttl)}}]
        await self._call(
            "renew leases", lambda: self._leases.update_many({**held, **_unexpired()}, update)
        )

        async def read() -> list[Doc]:
            return await self._leases.find({**held, **_unexpired()}).to_list()

        found = {
            (lease.name, lease.holder, lease.epoch): lease
            for lease in map(_lease, await self._call("read leases renewed", read))
        }
        return [found.get((lease.name, lease.holder, lease.epoch)) for lease in leases]

    async def give_back(self, lease: Lease) -> bool:
        held = {"_id": lease_id(lease.name), "holder": lease.holder, "epoch": lease.epoch}
        update = [{"$set": {"holder": None, "expiresAt": "$$NOW", "renewedAt": "$$NOW"}}]
        outcome = await self._call(
            "give a lease back", lambda: self._leases.update_one(held, update)
        )
        return outcome.matched_count == 1

    async def beat(self, replica: str, ttl: float, integrations: Sequence[str]) -> None:
        update = [
            {
                "$set": {
                    "kind": REPLICA,
                    "name": replica,
                    "startedAt": {"$ifNull": ["$startedAt", "$$NOW"]},
                    "seenAt": "$$NOW",
                    "expiresAt": _expiry(ttl),
                    "integrations": {"$literal": sorted(integrations)},
                    "ttl": ttl,
                }
            }
        ]
        await self._call(
            "record a heartbeat",
            lambda: self._leases.update_one({"_id": _replica_id(replica)}, update, upsert=True),
        )

    async def leave(self, replica: str) -> None:
        await self._call(
            "remove a heartbeat", lambda: self._leases.delete_one({"_id": _replica_id(replica)})
        )

    async def replicas(self) -> list[ReplicaRecord]:
        pipeline: list[Doc] = [
            {"$match": {"kind": REPLICA, **_unexpired()}},
            {"$set": {"up": {"$subtract": [NOW_MS, {"$toLong": "$startedAt"}]}}},
            {"$sort": {"name": 1}},
        ]

        async def read() -> list[Doc]:
            return await (await self._leases.aggregate(pipeline)).to_list()

        docs = await self._call("read live replicas", read)
        return [
            ReplicaRecord(
                doc["name"],
                tuple(str(name) for name in doc.get("integrations") or ()),
                float(doc.get("ttl") or 0),
                float(doc.get("up") or 0) / 1000,
            )
            for doc in docs
        ]

    async def leases(self) -> list[LeaseRecord]:
        pipeline: list[Doc] = [
            {"$match": {"kind": LEASE}},
            {"$set": {"live": {"$gt": [{"$toLong": {"$ifNull": ["$expiresAt", 0]}}, NOW_MS]}}},
            {"$sort": {"name": 1}},
        ]

        async def read() -> list[Doc]:
            return await (await self._leases.aggregate(pipeline)).to_list()

        docs = await self._call("read leases", read)
        return [
            LeaseRecord(
                doc["name"],
                doc.get("holder"),
                int(doc.get("epoch", 0)),
                _date(doc.get("since")),
                _date(doc.get("expiresAt")),
                bool(doc.get("live")) and doc.get("holder") is not None,
            )
            for doc in docs
        ]


def lease_id(name: str) -> str:
    """The ``_id`` of the lease document of integration ``name``."""
    return f"{LEASE}:{name}"


def _replica_id(replica: str) -> str:
    return f"{REPLICA}:{replica}"


def _lease(doc: Doc) -> Lease:
    return Lease(doc["name"], doc["holder"], int(doc["epoch"]), doc["expiresAt"], doc["since"])


def _date(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else None
