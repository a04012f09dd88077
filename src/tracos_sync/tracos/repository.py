"""``WorkOrderRepository`` on MongoDB (pymongo's native async client): indexes, the unsynced
pages and their conditional marks, health and backlog. Inbound writes are in ``upserts``."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime
from typing import Any, cast

import structlog
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from tracos_sync.domain.errors import FatalError
from tracos_sync.domain.fence import Fence
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import (
    ApplyResult,
    HealthCheck,
    PendingExport,
    UnreadableDocument,
)
from tracos_sync.domain.ports.repository import CHANGE_WAIT_SECONDS

from .documents import (
    EXPORT_PROJECTION,
    UnreadableDocumentError,
    as_exported,
    native_document,
    odd_is_synced,
    read_document,
)
from .fencing import STAMP, check, fenced, stamp
from .foreign_stamps import say_if_foreign
from .health import UNSYNCED, collection_health, oldest_unsynced_age
from .indexes import NUMBER_INDEX, STAMP_INDEX, STAMP_INDEX_OPTIONS, UNSYNCED_INDEX, index_state
from .retry import DUPLICATE_KEY, Retrier, describe
from .upserts import Upserts

log = structlog.get_logger("tracos_sync.mongo")

# Unsynced (``health.UNSYNCED``): isSynced false or missing, two point intervals of the index
# below, so the query reads only unsynced documents however large the collection.
# Only boolean true is synced: the values other writers may store instead (0, 1, "false",
# "yes") are exported too, each kind by a closed range of the same index, so that looking for
# them costs nothing when there are none. (``{"isSynced": {"$ne": true}}`` says the same in one
# query, but SecantusDB answers it, and any ``$or``, by scanning the whole collection:
# measured 0.5 s a query at 50,000 documents, at every sweep.) Rarer kinds (objects, arrays,
# dates) are not exported; ``check`` counts every odd value.
PENDING_QUERIES: tuple[dict[str, Any], ...] = (
    UNSYNCED,
    {"isSynced": {"$gte": -math.inf, "$lte": math.inf}},
    {"isSynced": {"$in": [math.nan]}},
    {"isSynced": {"$gte": "", "$lte": "\U0010ffff" * 8}},
)
ID_INDEX = [("_id", 1)]
CHANGE_WAIT_MS = int(CHANGE_WAIT_SECONDS * 1000)
CLOSE_SECONDS = 1.0


Doc = dict[str, Any]


class MongoWorkOrderRepository:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        collection: str,
        retrier: Retrier,
        *,
        dry_run: bool = False,
        owns_client: bool = True,
        fence: Fence | None = None,
        leases: AsyncCollection[Doc] | None = None,
    ) -> None:
        """With ``dry_run`` nothing is written: ``apply`` reports what it would do, marks are
        counted, not made, and no index is created. ``owns_client``: ``close`` closes the
        client (False when several repositories share it and its opener closes it). ``fence``,
        ``leases``: the lease every write is conditional on, and its collection (``fencing``)."""
        self._client = client
        self._owns_client = owns_client
        self._dry_run = dry_run
        base: AsyncCollection[Doc] = client[database][collection]
        # Journaled: an acknowledged-but-unjournaled write can vanish in a crash, and the client's
        # file is archived on the strength of this acknowledgement. Keep the URI's w, add j.
        concern = {**base.write_concern.document, "j": True}
        self._durable = base.with_options(write_concern=WriteConcern(**concern))
        self._collection = base
        self._retrier = retrier
        self._fence = fence
        self._leases = leases
        self._upserts = Upserts(
            base, self._durable, retrier, self._ensure_indexes, fence=fence, leases=leases
        )

    # -- setup ---------------------------------------------------------------------------------

    async def prepare(self) -> None:
        if not self._dry_run:
            await self._retrier.call("ensure indexes", self._ensure_indexes)

    async def _ensure_indexes(self) -> None:
        """Cheap when all is in place (one listIndexes): run before every sweep, and before
        every inbound write (``Upserts``), so that an index dropped while a run or ``watch``
        goes on is rebuilt before the next write, never after a duplicate."""
        state = index_state([ix async for ix in await self._collection.list_indexes()])
        if state.number_problem is not None:
            raise FatalError(state.number_problem)
        try:
            if not state.number_unique:
                await self._durable.create_index(NUMBER_INDEX, unique=True)
                log.info("mongo.index_created", index="number (unique)")
            if not state.unsynced:
                await self._durable.create_index(UNSYNCED_INDEX)
            if self._fence is not None and not state.stamp:
                await self._durable.create_index(STAMP_INDEX, **STAMP_INDEX_OPTIONS)
        except OperationFailure as exc:
            if exc.code == DUPLICATE_KEY:
                raise FatalError(
                    "the collection holds several documents with the same number; "
                    "a unique index on number cannot be built until they are merged"
                ) from exc
            raise

    async def close(self) -> None:
        if self._owns_client:
            await close_client(self._client)

    @property
    def raw_collection(self) -> AsyncCollection[Doc]:
        """The collection itself, for tests that play another writer. Not part of the port."""
        return self._collection

    async def holds_work_orders(self) -> bool:
        found = await self._retrier.call(
            "look for work orders", lambda: self._collection.find_one({}, {"_id": 1})
        )
        return found is not None

    async def seed(self, orders: Sequence[WorkOrder]) -> int:
        operations = [
            UpdateOne({"number": o.number}, {"$setOnInsert": native_document(o)}, upsert=True)
            for o in orders
        ]

        async def write() -> int:
            return (await self._durable.bulk_write(operations, ordered=False)).upserted_count

        return await self._retrier.call("write sample work orders", write)

    # -- inbound -------------------------------------------------------------------------------

    async def apply(
        self, orders: Sequence[WorkOrder], synced_at: datetime, not_after: datetime | None = None
    ) -> ApplyResult:
        if self._dry_run:
            return await self._retrier.call(
                "plan work orders", lambda: self._upserts.plan(orders, not_after)
            )
        return await self._upserts.apply(orders, synced_at, not_after)

    async def pending(
        self, batch_size: int
    ) -> AsyncGenerator[list[PendingExport | UnreadableDocument], None]:
        """Pages of a few cursors, one after the other (the unsynced query, then the odd
        isSynced values, see ``PENDING_QUERIES``). If a cursor is lost to a transient failure
        (or the server lost it: CursorNotFound) its query is opened again; documents marked
        meanwhile have left its result, and the ones already handed out this run (``seen``)
        are not handed out twice."""
        seen: set[Any] = set()
        queries = iter(PENDING_QUERIES)
        query: dict[str, Any] | None = next(queries)
        cursor: AsyncCursor[Doc] | None = None

        async def next_page() -> list[Doc]:
            nonlocal cursor, query
            page: list[Doc] = []
            try:
                while query is not None and len(page) < batch_size:
                    if cursor is None:
                        cursor = self._collection.find(
                            query, EXPORT_PROJECTION, batch_size=batch_size
                        )
                    docs = await cursor.to_list(batch_size - len(page))
                    if not docs:  # this query is done: the next one
                        await cursor.close()
                        cursor, query = None, next(queries, None)
                        continue
                    page.extend(doc for doc in docs if doc["_id"] not in seen)
            except PyMongoError:
                cursor = None  # reopened by the retry
                raise
            return page

        odd: list[Any] = []
        try:
            while page := await self._retrier.call("read unsynced work orders", next_page):
                seen.update(doc["_id"] for doc in page)
                odd += [doc["isSynced"] for doc in page if odd_is_synced(doc)]
                yield [_to_export(doc) for doc in page]
        finally:
            if cursor is not None:
                await cursor.close()
            if odd:
                log.warning(
                    "outbound.odd_is_synced",
                    count=len(odd),
                    values=sorted({repr(value)[:20] for value in odd})[:5],
                    reason="isSynced is not a boolean: taken as not synced, exported",
                )

    async def mark_synced(self, exports: Sequence[PendingExport], synced_at: datetime) -> int:
        if not exports or self._dry_run:
            return len(exports)

        # The hint spares the planner from weighing the unsynced index for an _id lookup
        # (measured: a third of the cost of each mark on SecantusDB; mongod takes _id anyway).
        # Conditional on every exported field as read (``version``): an edit between the read
        # and the mark, even one that kept updatedAt, leaves the document unsynced. And on the
        # lease, at each attempt (a mark it refuses leaves the document for the next holder).
        async def mark() -> int:
            check(self._fence)
            marks = {"isSynced": True, "syncedAt": synced_at, **stamp(self._fence)}
            operations = [
                UpdateOne(
                    fenced({"_id": export.key, **cast(Doc, export.version)}, self._fence),
                    {"$set": marks},
                    hint=ID_INDEX,
                )
                for export in exports
            ]
            outcome = await self._collection.bulk_write(operations, ordered=False)
            return outcome.matched_count

        marked = await self._retrier.call("mark work orders synced", mark)
        if self._fence is not None and marked < len(exports):
            await self._check_not_fenced_out(exports)
        return marked

    async def _check_not_fenced_out(self, exports: Sequence[PendingExport]) -> None:
        """After marks that missed: one whose document still holds every exported field as read
        but is not marked by us was refused by the fence alone (a later epoch's stamp, or the
        lease expired), not by an edit: the lease is lost (``LeaseLost``), and the miss is not
        an edit to send again."""
        assert self._fence is not None
        ours = {
            "isSynced": True,
            **{f"{STAMP}.{k}": v for k, v in stamp(self._fence)[STAMP].items()},
        }
        unchanged = {
            "$or": [{"_id": export.key, **cast(Doc, export.version)} for export in exports],
            "$nor": [ours],
        }

        async def refused() -> Doc | None:
            return await self._collection.find_one(unchanged, {STAMP: 1})

        document = await self._retrier.call("tell a fence's refusal from an edit", refused)
        if document is not None:
            self._fence.lose()
            if self._leases is not None:
                with contextlib.suppress(PyMongoError):  # a diagnosis, not the refusal itself
                    await say_if_foreign(self._leases, self._fence, document)
            self._fence.check()

    # -- operating ---------------------------------------------------------------------------

    async def health(self) -> list[HealthCheck]:
        """Reachability and version, indexes, and the unsynced backlog."""
        return await collection_health(self._client, self._collection)

    async def oldest_unsynced_age(self) -> float | None:
        """Seconds since the oldest unsynced work order was last updated (None: none waiting)."""
        return await self._retrier.call(
            "read the unsynced backlog", lambda: oldest_unsynced_age(self._collection)
        )

    async def unsynced_changes(self) -> AsyncGenerator[bool, None]:
        """A change stream of writes that may leave a work order unsynced (not our own marks
        nor inbound's writes, which are stored synced). Raises if the server has none."""
        pipeline = [
            {
                "$match": {
                    "operationType": {"$in": ["insert", "update", "replace"]},
                    "updateDescription.updatedFields.isSynced": {"$ne": True},
                    "fullDocument.isSynced": {"$ne": True},
                }
            }
        ]
        try:
            # Each wait bounded on the server: the consumer can end between two (a task
            # cancelled inside a getMore left the stream closing for ever, now and then, with
            # 150 integrations stopping at once).
            async with await self._collection.watch(
                pipeline, max_await_time_ms=CHANGE_WAIT_MS
            ) as stream:
                while stream.alive:
                    yield await stream.try_next() is not None
        except PyMongoError as exc:
            raise FatalError(f"change stream: {describe(exc)}") from exc


def _to_export(doc: Doc) -> PendingExport | UnreadableDocument:
    try:
        order = read_document(doc)
    except UnreadableDocumentError as exc:
        ref = f"_id={doc.get('_id')} number={doc.get('number')!r:.40}"
        return UnreadableDocument(ref, str(exc))
    return PendingExport(order, key=doc["_id"], version=as_exported(doc))


async def close_client(client: AsyncMongoClient[Doc]) -> None:
    """Closing ends the server sessions, which waits for server selection when the database is
    away: bounded, so that stopping during an outage takes a moment, not a timeout."""
    try:
        await asyncio.wait_for(client.close(), CLOSE_SECONDS)
    except TimeoutError:
        log.debug("mongo.close_abandoned", reason="the server did not answer in time")
