"""``ConnectorStateStore`` on MongoDB: the connectors' own state beside TracOS's collection.

It is built by the bootstrap on the repository's client, with the repository's ``Retrier`` and
its journaled write concern, so a process holds one MongoDB client and a connector's watermark is
as durable as the work orders it covers. Two collections: state documents by ``_id``, and dead
letters by ``<scope>:<key>`` (the same refusal is one entry with a count).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from tracos_sync.domain.fence import Fence, LeaseLost
from tracos_sync.domain.ports import DeadLetter

from .fencing import check, fenced, insert_from_lease, stamp
from .leases import lease_id
from .retry import Retrier

Doc = dict[str, Any]
# A refused payload is kept as JSON text, cut to this many characters (a document must stay far
# below MongoDB's 16 MB, whatever the client sent).
MAX_PAYLOAD_CHARS = 100_000


class MongoConnectorStateStore:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        state_collection: str,
        dead_letter_collection: str,
        retrier: Retrier,
        *,
        fence: Fence | None = None,
        leases: AsyncCollection[Doc] | None = None,
    ) -> None:
        """``fence``: the lease this replica holds on the integration; every write is
        conditional on it (``tracos.fencing``), and a document's first write is made by the
        server from the lease document, in ``leases``. None: no leases in use."""
        db = client[database]
        # Journaled, as the repository's inbound writes: the watermark must not survive a crash
        # that loses the work orders it says were applied. Keep the URI's w, add j.
        concern = WriteConcern(**{**db.write_concern.document, "j": True})
        self._state: AsyncCollection[Doc] = db.get_collection(
            state_collection, write_concern=concern
        )
        self._letters: AsyncCollection[Doc] = db.get_collection(
            dead_letter_collection, write_concern=concern
        )
        self._retrier = retrier
        self._fence = fence
        self._leases = None if leases is None else leases.with_options(write_concern=concern)
        self._where = (
            f"MongoDB {database}.{state_collection} (state), "
            f"{database}.{dead_letter_collection} (dead letters)"
        )

    async def get(self, key: str) -> Doc | None:
        doc = await self._retrier.call(
            "read connector state", lambda: self._state.find_one({"_id": key})
        )
        if doc is None:
            return None
        doc.pop("_id", None)
        return doc

    async def put(self, key: str, state: Mapping[str, Any]) -> None:
        document = {k: v for k, v in state.items() if k != "_id"}

        async def write() -> None:
            if self._fence is not None:
                await self._put_fenced(key, {**document, **stamp(self._fence)})
                return
            await self._state.replace_one({"_id": key}, document, upsert=True)

        await self._retrier.call("write connector state", write)

    async def _put_fenced(self, key: str, document: Doc) -> None:
        """Over the document there, if the fence lets it; a first write by the server, from
        the lease document (``fencing``); then over it again, to know it is ours."""
        check(self._fence)  # in each attempt: a retry may outlast the lease
        where = fenced({"_id": key}, self._fence)
        if (await self._state.replace_one(where, document)).matched_count:
            return
        if await self._state.find_one({"_id": key}, {"_id": 1}) is not None:
            raise self._lost(f"state {key!r}")  # there, and the fence refused
        await self._first_from_lease(self._state, {"_id": key, **document})
        if not (await self._state.replace_one(where, document)).matched_count:
            raise self._lost(f"state {key!r}")

    async def _first_from_lease(self, collection: AsyncCollection[Doc], document: Doc) -> None:
        fence, leases = self._fence, self._leases
        assert fence is not None
        assert leases is not None, "a fenced store is given the leases"
        into = {"db": collection.database.name, "coll": collection.name}
        for pipeline in insert_from_lease(
            fence, lease_id(fence.lease.name), [document], into, "_id"
        ):
            await (await leases.aggregate(pipeline)).to_list()

    def _lost(self, what: str) -> LeaseLost:
        """The fence refused a write: the lease was taken over (a later epoch wrote there, or
        it expired by the server's clock)."""
        assert self._fence is not None
        self._fence.lose()
        return LeaseLost(
            f"{what} not written: the lease of {self._fence.lease.name!r} (epoch "
            f"{self._fence.epoch}) is no longer this replica's"
        )

    async def dead_letter(self, letter: DeadLetter, at: datetime) -> int:
        entry = f"{letter.scope}:{letter.key}"
        update = {
            "$set": {
                "scope": letter.scope,
                "direction": letter.direction,
                "ref": _text(letter.ref),
                "problems": [
                    {k: _text(v) if isinstance(v, str) else v for k, v in p.as_dict().items()}
                    for p in letter.problems
                ],
                "payload": payload_text(letter.payload),
                "lastAt": at,
                **stamp(self._fence),
            },
            "$setOnInsert": {"firstAt": at},
            "$inc": {"count": 1},
        }

        async def record() -> int:
            if self._fence is not None:
                return await self._record_fenced(entry, update, at)
            try:
                doc = await self._letters.find_one_and_update(
                    {"_id": entry}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:  # a concurrent first record of the same key won: count on
                doc = await self._letters.find_one_and_update(
                    {"_id": entry}, update, return_document=ReturnDocument.AFTER
                )
            return int((doc or {}).get("count", 1))

        return await self._retrier.call("record a dead letter", record)

    async def _record_fenced(self, entry: str, update: Doc, at: datetime) -> int:
        """Counted if the fence lets it; a first record made by the server from the lease
        document (with no count yet), then counted."""
        check(self._fence)
        where = fenced({"_id": entry}, self._fence)
        after = ReturnDocument.AFTER
        doc = await self._letters.find_one_and_update(where, update, return_document=after)
        if doc is None:
            if await self._letters.find_one({"_id": entry}, {"_id": 1}) is not None:
                raise self._lost(f"dead letter {entry!r}")  # there, and the fence refused
            first = {"_id": entry, **update["$set"], "firstAt": at, "count": 0}
            await self._first_from_lease(self._letters, first)
            doc = await self._letters.find_one_and_update(where, update, return_document=after)
            if doc is None:
                raise self._lost(f"dead letter {entry!r}")
        return int(doc.get("count", 1))

    async def count_dead_letters(self, scope: str) -> int:
        return await self._retrier.call(
            "count dead letters", lambda: self._letters.count_documents({"scope": scope})
        )

    def describe(self) -> str:
        return self._where


def payload_text(payload: object) -> str:
    """The payload as JSON text (non-ASCII escaped, so that even text that is not valid Unicode
    can be stored), cut to ``MAX_PAYLOAD_CHARS``."""
    text = json.dumps(payload, default=str, ensure_ascii=True, sort_keys=True)
    return text if len(text) <= MAX_PAYLOAD_CHARS else text[: MAX_PAYLOAD_CHARS - 1] + "…"


def _text(value: str) -> str:
    """Text BSON can hold: a lone surrogate (from a ``\\udXXX`` escape) is written escaped."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")
