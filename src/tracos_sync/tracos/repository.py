"""``WorkOrderRepository`` on MongoDB (pymongo's native async client).

Inbound writes are chosen for both mongod and slower wire-compatible servers: one unordered
``insert_many`` for the batch (new numbers are the common case and the cheapest write), then, only
for the numbers that already existed (duplicate-key errors), a read of their current ``updatedAt``
and one unordered bulk of updates, each conditional on the exact value read (optimistic
concurrency: a concurrent writer makes the condition miss, and that number is compared again).
The comparison is done here rather than in the filter because other writers may store
``updatedAt`` as an ISO string, which a BSON ``$lt`` against a date never matches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from tracos_sync.domain.dates import InvalidDate, coerce_instant
from tracos_sync.domain.errors import FatalError
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import (
    ApplyResult,
    HealthCheck,
    PendingExport,
    RefusedOrder,
    UnreadableDocument,
)

from .documents import (
    EXPORT_PROJECTION,
    UnreadableDocumentError,
    insert_document,
    native_document,
    read_document,
    storage_problem,
    update_fields,
)
from .indexes import NUMBER_INDEX, UNSYNCED_INDEX, index_state
from .retry import DUPLICATE_KEY, TRANSIENT_CODES, Retrier, describe

log = structlog.get_logger("tracos_sync.mongo")

# Unsynced means isSynced false or missing (null matches missing): two point intervals of the
# index below, so the query reads only unsynced documents however large the collection.
UNSYNCED: dict[str, Any] = {"isSynced": {"$in": [False, None]}}
ID_INDEX = [("_id", 1)]
# Keys per $in query: bounded so that a server whose $in is not a hash lookup stays linear.
LOOKUP_CHUNK = 250
# Rounds of compare-and-set before a number that keeps changing under us is left to next run.
MAX_CAS_ROUNDS = 10
CLOSE_SECONDS = 1.0
# Failures the driver raises before sending, for one document it cannot encode: the batch is
# split until the document responsible is found and refused.
ENCODING_ERRORS = (InvalidDocument, UnicodeEncodeError, OverflowError)


Doc = dict[str, Any]


class MongoWorkOrderRepository:
    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        collection: str,
        retrier: Retrier,
        dry_run: bool = False,
    ) -> None:
        """With ``dry_run`` nothing is written: ``apply`` reports what it would do, marks are
        counted, not made, and no index is created."""
        self._client = client
        self._dry_run = dry_run
        base: AsyncCollection[Doc] = client[database][collection]
        # Journaled: an acknowledged-but-unjournaled write can vanish in a crash, and the client's
        # file is archived on the strength of this acknowledgement. Keep the URI's w, add j.
        concern = {**base.write_concern.document, "j": True}
        self._durable = base.with_options(write_concern=WriteConcern(**concern))
        self._collection = base
        self._retrier = retrier

    # -- setup ---------------------------------------------------------------------------------

    async def prepare(self) -> None:
        if not self._dry_run:
            await self._retrier.call("ensure indexes", self._ensure_indexes)

    async def _ensure_indexes(self) -> None:
        """Cheap when all is in place (one listIndexes): run before every sweep, so that an
        index dropped while ``watch`` runs is rebuilt before the next write, never after a
        duplicate."""
        state = index_state([ix async for ix in await self._collection.list_indexes()])
        if state.number_problem is not None:
            raise FatalError(state.number_problem)
        try:
            if not state.number_unique:
                await self._collection.create_index(NUMBER_INDEX, unique=True)
                log.info("mongo.index_created", index="number (unique)")
            if not state.unsynced:
                await self._collection.create_index(UNSYNCED_INDEX)
        except OperationFailure as exc:
            if exc.code == DUPLICATE_KEY:
                raise FatalError(
                    "the collection holds several documents with the same number; "
                    "a unique index on number cannot be built until they are merged"
                ) from exc
            raise

    async def close(self) -> None:
        # Closing ends the server sessions, which waits for server selection when the database
        # is away: bounded, so that stopping during an outage takes a moment, not a timeout.
        try:
            await asyncio.wait_for(self._client.close(), CLOSE_SECONDS)
        except TimeoutError:
            log.debug("mongo.close_abandoned", reason="the server did not answer in time")

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

    async def apply(self, orders: Sequence[WorkOrder], synced_at: datetime) -> ApplyResult:
        if self._dry_run:
            return await self._retrier.call("plan work orders", lambda: self._plan(orders))
        result = ApplyResult()
        for round_ in _rounds(orders):
            result += await self._apply_contained(round_, synced_at)
        return result

    async def _apply_contained(self, items: list[_Item], synced_at: datetime) -> ApplyResult:
        """One round, with an order the driver cannot encode found by halving and refused."""
        try:
            return await self._retrier.call(
                "write work orders", lambda: self._apply_round(items, synced_at)
            )
        except ENCODING_ERRORS as exc:
            if len(items) == 1:
                reason = f"TracOS cannot store it: {type(exc).__name__}: {str(exc)[:200]}"
                return ApplyResult(refused=(RefusedOrder(items[0][0], reason),))
            half = len(items) // 2
            first = await self._apply_contained(items[:half], synced_at)
            return first + await self._apply_contained(items[half:], synced_at)

    async def _apply_round(self, items: list[_Item], synced_at: datetime) -> ApplyResult:
        """Orders with distinct numbers: insert what is new, compare-and-set the rest."""
        refused: list[RefusedOrder] = []
        storable: list[_Item] = []
        for position, order in items:
            problem = storage_problem(order)
            if problem is None:
                storable.append((position, order))
            else:
                refused.append(RefusedOrder(position, problem))
        if not storable:
            return ApplyResult(refused=tuple(refused))
        documents = [insert_document(order, synced_at) for _, order in storable]
        try:
            await self._durable.insert_many(documents, ordered=False)
            return ApplyResult(inserted=len(storable), refused=tuple(refused))
        except BulkWriteError as exc:
            errors = _write_errors(exc)
            inserted = int(exc.details.get("nInserted", 0))
            existing: list[_Item] = []
            for err in errors:
                item = storable[err["index"]]
                if err.get("code") == DUPLICATE_KEY:
                    existing.append(item)
                else:
                    refused.append(RefusedOrder(item[0], _server_refusal(err)))
        result = await self._update_if_newer(existing, synced_at)
        return result + ApplyResult(inserted=inserted, refused=tuple(refused))

    async def _update_if_newer(self, items: list[_Item], synced_at: datetime) -> ApplyResult:
        waiting = {order.number: (position, order) for position, order in items}
        updated = stale = 0
        refused: list[RefusedOrder] = []
        for _ in range(MAX_CAS_ROUNDS):
            if not waiting:
                break
            current = await self._current_versions(list(waiting))
            operations: list[UpdateOne] = []
            attempted: list[_Item] = []
            for number, (position, order) in waiting.items():
                if number not in current:
                    # Deleted since the insert failed: insert it unless someone else did.
                    operations.append(
                        UpdateOne(
                            {"number": number},
                            {"$setOnInsert": insert_document(order, synced_at)},
                            upsert=True,
                        )
                    )
                    attempted.append((position, order))
                    continue
                raw = current[number]
                try:
                    newer = order.updated_at > coerce_instant(raw)
                except InvalidDate as exc:
                    # Never "older": TracOS's copy cannot be compared, so it is not overwritten.
                    what = "no updatedAt" if raw is _MISSING else f"an unreadable updatedAt ({exc})"
                    reason = f"TracOS work order {number} has {what}; not overwritten"
                    refused.append(RefusedOrder(position, reason))
                    continue
                if newer:
                    operations.append(
                        UpdateOne(
                            {"number": number, "updatedAt": raw},
                            {"$set": update_fields(order, synced_at)},
                        )
                    )
                    attempted.append((position, order))
                else:
                    stale += 1
            if not operations:
                waiting = {}
                break
            try:
                outcome = await self._durable.bulk_write(operations, ordered=False)
                matched = outcome.matched_count + outcome.upserted_count
            except BulkWriteError as exc:
                # Refused operations are the orders' own fault; the others were applied.
                failed = {err["index"]: err for err in _write_errors(exc)}
                for index, err in failed.items():
                    refused.append(RefusedOrder(attempted[index][0], _server_refusal(err)))
                attempted = [item for i, item in enumerate(attempted) if i not in failed]
                matched = int(exc.details.get("nMatched", 0)) + int(exc.details.get("nUpserted", 0))
            if matched == len(attempted):
                updated += matched
                waiting = {}
                break
            # Some conditions missed: a concurrent writer got there first. Those whose stored
            # version is now ours were applied; the others are compared again.
            after = await self._current_versions([order.number for _, order in attempted])
            waiting = {}
            for position, order in attempted:
                stored = after.get(order.number, _MISSING)
                if stored is not _MISSING and _same_instant(stored, order.updated_at):
                    updated += 1
                else:
                    waiting[order.number] = (position, order)
        if waiting:
            log.warning("inbound.contended", numbers=sorted(waiting)[:10], count=len(waiting))
            raise FatalError(f"{len(waiting)} work orders kept changing while being written")
        return ApplyResult(updated=updated, stale=stale, refused=tuple(refused))

    async def _plan(self, orders: Sequence[WorkOrder]) -> ApplyResult:
        """What ``apply`` would do, read-only, with the same one-after-the-other semantics."""
        current: dict[int, Any] = await self._current_versions(
            list(dict.fromkeys(o.number for o in orders))
        )
        inserted = updated = stale = 0
        refused: list[RefusedOrder] = []
        for position, order in enumerate(orders):
            problem = storage_problem(order)
            if problem is not None:
                refused.append(RefusedOrder(position, problem))
                continue
            if order.number not in current:
                inserted += 1
            else:
                try:
                    newer = order.updated_at > coerce_instant(current[order.number])
                except InvalidDate as exc:
                    reason = f"TracOS work order {order.number} has an unreadable updatedAt ({exc})"
                    refused.append(RefusedOrder(position, reason))
                    continue
                if not newer:
                    stale += 1
                    continue
                updated += 1
            current[order.number] = order.updated_at
        return ApplyResult(inserted, updated, stale, tuple(refused))

    async def _current_versions(self, numbers: list[int]) -> dict[int, Any]:
        versions: dict[int, Any] = {}
        for start in range(0, len(numbers), LOOKUP_CHUNK):
            chunk = numbers[start : start + LOOKUP_CHUNK]
            cursor = self._collection.find(
                {"number": {"$in": chunk}}, {"_id": 0, "number": 1, "updatedAt": 1}
            )
            async for doc in cursor:
                versions[doc["number"]] = doc.get("updatedAt", _MISSING)
        return versions

    # -- outbound ------------------------------------------------------------------------------

    async def pending(
        self, batch_size: int
    ) -> AsyncGenerator[list[PendingExport | UnreadableDocument], None]:
        """Pages of one cursor (one query, then getMore). If the cursor is lost to a transient
        failure the query is opened again; documents marked meanwhile have left its result, and
        the ones already handed out this run (``seen``) are not handed out twice."""
        seen: set[Any] = set()
        cursor: AsyncCursor[Doc] | None = None

        async def next_page() -> list[Doc]:
            nonlocal cursor
            if cursor is None:
                cursor = self._collection.find(UNSYNCED, EXPORT_PROJECTION, batch_size=batch_size)
            page: list[Doc] = []
            try:
                while len(page) < batch_size:
                    docs = await cursor.to_list(batch_size - len(page))
                    if not docs:
                        break
                    page.extend(doc for doc in docs if doc["_id"] not in seen)
            except PyMongoError:
                cursor = None  # reopened by the retry
                raise
            return page

        try:
            while page := await self._retrier.call("read unsynced work orders", next_page):
                seen.update(doc["_id"] for doc in page)
                yield [_to_export(doc) for doc in page]
        finally:
            if cursor is not None:
                await cursor.close()

    async def mark_synced(self, exports: Sequence[PendingExport], synced_at: datetime) -> int:
        if not exports or self._dry_run:
            return len(exports)
        # The hint spares the planner from weighing the unsynced index for an _id lookup
        # (measured: a third of the cost of each mark on SecantusDB; mongod takes _id anyway).
        operations = [
            UpdateOne(
                {"_id": export.key, "updatedAt": export.version},
                {"$set": {"isSynced": True, "syncedAt": synced_at}},
                hint=ID_INDEX,
            )
            for export in exports
        ]

        async def mark() -> int:
            outcome = await self._collection.bulk_write(operations, ordered=False)
            return outcome.matched_count

        return await self._retrier.call("mark work orders synced", mark)

    # -- operating ---------------------------------------------------------------------------

    async def health(self) -> list[HealthCheck]:
        """Reachability and version, indexes, and the unsynced backlog."""
        try:
            info = await self._client.server_info()
            indexes = [ix async for ix in await self._collection.list_indexes()]
            unsynced = await self._collection.count_documents(UNSYNCED)
            oldest = await self._oldest_unsynced_age()
        except PyMongoError as exc:
            return [HealthCheck("database", False, f"unreachable: {describe(exc)}")]
        state = index_state(indexes)
        age = "" if oldest is None else f", oldest waiting {oldest:,.0f} s"
        later = "not there yet; the first sync creates it"
        if state.number_problem is not None:
            number = HealthCheck("index on number", False, state.number_problem)
        else:
            number = HealthCheck(
                "index on number", True, "unique" if state.number_unique else later
            )
        unsynced_ix = "present" if state.unsynced else later
        return [
            HealthCheck("database", True, f"reachable, server version {info.get('version')}"),
            number,
            HealthCheck("index for unsynced", True, unsynced_ix),
            HealthCheck("unsynced work orders", True, f"{unsynced} waiting{age}"),
        ]

    async def oldest_unsynced_age(self) -> float | None:
        """Seconds since the oldest unsynced work order was last updated (None: none waiting)."""
        return await self._retrier.call("read the unsynced backlog", self._oldest_unsynced_age)

    async def _oldest_unsynced_age(self) -> float | None:
        oldest: datetime | None = None
        async for doc in self._collection.find(UNSYNCED, {"updatedAt": 1}):
            with contextlib.suppress(InvalidDate):
                instant = coerce_instant(doc.get("updatedAt"))
                oldest = instant if oldest is None or instant < oldest else oldest
        return None if oldest is None else (datetime.now(UTC) - oldest).total_seconds()

    async def unsynced_changes(self) -> AsyncGenerator[None, None]:
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
            async with await self._collection.watch(pipeline) as stream:
                async for _ in stream:
                    yield None
        except PyMongoError as exc:
            raise FatalError(f"change stream: {describe(exc)}") from exc


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


# An order and its position in what ``apply`` was given.
_Item = tuple[int, WorkOrder]


def _rounds(orders: Sequence[WorkOrder]) -> list[list[_Item]]:
    """Split so that no round repeats a number: round k holds each number's k-th occurrence, so
    applying the rounds in order is the same as applying the orders one by one."""
    rounds: list[list[_Item]] = []
    seen: dict[int, int] = {}
    for position, order in enumerate(orders):
        k = seen.get(order.number, 0)
        seen[order.number] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append((position, order))
    return rounds


def _write_errors(exc: BulkWriteError) -> list[dict[str, Any]]:
    """The per-document errors of a bulk write; re-raised (for the retrier) when the failure is
    not the documents' own: a write-concern error, or a transient code."""
    details = exc.details or {}
    errors: list[dict[str, Any]] = details.get("writeErrors", [])
    if details.get("writeConcernErrors") or any(e.get("code") in TRANSIENT_CODES for e in errors):
        raise exc
    return errors


def _server_refusal(err: dict[str, Any]) -> str:
    message = str(err.get("errmsg", "refused"))[:200]
    return f"TracOS refused it: {message} (code {err.get('code')})"


def _same_instant(stored: Any, value: datetime) -> bool:
    try:
        return coerce_instant(stored) == value
    except InvalidDate:
        return False


def _to_export(doc: Doc) -> PendingExport | UnreadableDocument:
    try:
        order = read_document(doc)
    except UnreadableDocumentError as exc:
        ref = f"_id={doc.get('_id')} number={doc.get('number')!r:.40}"
        return UnreadableDocument(ref, str(exc))
    return PendingExport(order, key=doc["_id"], version=doc.get("updatedAt"))
