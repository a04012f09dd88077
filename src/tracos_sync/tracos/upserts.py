"""Inbound writes: upsert by number, only when the client's copy is strictly newer.

One unordered ``insert_many`` for a batch (new numbers are the common case and the cheapest
write), then, only for the numbers that already existed (duplicate-key errors), a read of their
current ``updatedAt`` and one unordered bulk of updates, each conditional on the exact value read
(optimistic concurrency: a concurrent writer makes the condition miss, and that number is
compared again). The comparison is done here rather than in the filter because other writers
may store ``updatedAt`` as an ISO string or epoch milliseconds, which a BSON ``$lt`` against a
date never matches.

An order MongoDB will not store for a reason of its own (text it cannot encode, a document over
16 MB, a server refusal, an unreadable stored version) is reported as refused and the rest of the
batch is applied: a batch the driver cannot encode is halved until the order responsible is
found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from bson.errors import InvalidDocument
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from tracos_sync.domain.dates import InvalidDate, coerce_instant
from tracos_sync.domain.errors import FatalError
from tracos_sync.domain.fence import Fence
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import ApplyResult, RefusedOrder

from .documents import insert_document, storage_problem, update_fields
from .fencing import check, fenced, stamp
from .lease_inserts import MergeRefused, insert_new
from .retry import DUPLICATE_KEY, Retrier
from .upsert_rules import (
    LOOKUP_CHUNK,
    MISSING,
    Item,
    dated_ahead,
    future_reason,
    holds_at_least,
    rounds,
    same_instant,
    server_refusal,
    write_errors,
)

log = structlog.get_logger("tracos_sync.mongo")

Doc = dict[str, Any]
# Rounds of compare-and-set before a number that keeps changing under us is left to next run.
MAX_CAS_ROUNDS = 10
# Failures the driver raises before sending, for one document it cannot encode: the batch is
# split until the document responsible is found and refused.
ENCODING_ERRORS = (InvalidDocument, UnicodeEncodeError, OverflowError)


# Failures of one document in a batch: the batch is halved until that document is found.
ONE_DOCUMENT_ERRORS = (*ENCODING_ERRORS, MergeRefused)


class Upserts:
    def __init__(
        self,
        collection: AsyncCollection[Doc],
        durable: AsyncCollection[Doc],
        retrier: Retrier,
        ensure_unique_number: Callable[[], Awaitable[None]],
        *,
        fence: Fence | None = None,
        leases: AsyncCollection[Doc] | None = None,
    ) -> None:
        """``durable``: the collection with the journaled write concern inbound needs.
        ``ensure_unique_number``: checks (and builds if missing) the unique index on number,
        before every write (see ``_apply_contained``).
        ``fence``: the lease every write is conditional on (``tracos.fencing``); ``leases``:
        the collection of its document (journaled), from which new work orders are inserted."""
        self._collection = collection
        self._durable = durable
        self._retrier = retrier
        self._ensure_unique_number = ensure_unique_number
        self._fence = fence
        self._leases = leases

    async def apply(
        self, orders: Sequence[WorkOrder], synced_at: datetime, not_after: datetime | None = None
    ) -> ApplyResult:
        ahead = dated_ahead(orders, not_after)
        result = ApplyResult()
        if ahead:
            result += await self._retrier.call(
                "read work orders", lambda: self._ahead_of_clock(ahead, not_after)
            )
        skip = {position for position, _ in ahead}
        for round_ in rounds(orders, skip):
            result += await self._apply_contained(round_, synced_at)
        return result

    async def _ahead_of_clock(self, items: list[Item], not_after: datetime | None) -> ApplyResult:
        """Orders dated beyond ``not_after``: never written. Stale when TracOS already holds that
        version or a newer one (the host's clock stepped back after applying it), otherwise
        refused as dated in the future."""
        current = await self._current_versions(list({order.number for _, order in items}))
        stale = 0
        refused: list[RefusedOrder] = []
        for position, order in items:
            if holds_at_least(current.get(order.number, MISSING), order.updated_at):
                stale += 1
            else:
                refused.append(RefusedOrder(position, future_reason(order, not_after)))
        return ApplyResult(stale=stale, refused=tuple(refused))

    async def _apply_contained(self, items: list[Item], synced_at: datetime) -> ApplyResult:
        """One round, with an order the driver cannot encode found by halving and refused."""

        async def write() -> ApplyResult:
            # New numbers are inserted, and only the unique index turns an insert of a number
            # that exists into an update: it is looked for before every write, not once per
            # run or sweep. A run (or a sweep following a flow of files) writes batch after
            # batch, and the index may be dropped by another tool between two of them, or lost
            # by a server that restarted before flushing it to its journal (then the write is
            # tried again, and looks again). One listIndexes when all is in place.
            await self._ensure_unique_number()
            return await self._apply_round(items, synced_at)

        try:
            return await self._retrier.call("write work orders", write)
        except ONE_DOCUMENT_ERRORS as exc:
            if len(items) == 1:
                reason = f"TracOS cannot store it: {type(exc).__name__}: {str(exc)[:200]}"
                return ApplyResult(refused=(RefusedOrder(items[0][0], reason),))
            half = len(items) // 2
            first = await self._apply_contained(items[:half], synced_at)
            return first + await self._apply_contained(items[half:], synced_at)

    async def _apply_round(self, items: list[Item], synced_at: datetime) -> ApplyResult:
        """Orders with distinct numbers: insert what is new, compare-and-set the rest."""
        refused: list[RefusedOrder] = []
        storable: list[Item] = []
        for position, order in items:
            problem = storage_problem(order)
            if problem is None:
                storable.append((position, order))
            else:
                refused.append(RefusedOrder(position, problem))
        if not storable:
            return ApplyResult(refused=tuple(refused))
        check(self._fence)
        documents = [
            {**insert_document(order, synced_at), **stamp(self._fence)} for _, order in storable
        ]
        if self._fence is not None and self._leases is not None:
            new = await insert_new(
                self._collection, self._durable, self._leases, self._fence, documents
            )
            there = [item for item in storable if item[1].number not in new]
            result = await self._update_if_newer(there, synced_at)
            return result + ApplyResult(inserted=len(new), refused=tuple(refused))
        try:
            await self._durable.insert_many(documents, ordered=False)
            return ApplyResult(inserted=len(storable), refused=tuple(refused))
        except BulkWriteError as exc:
            errors = write_errors(exc)
            inserted = int(exc.details.get("nInserted", 0))
            existing: list[Item] = []
            for err in errors:
                item = storable[err["index"]]
                if err.get("code") == DUPLICATE_KEY:
                    existing.append(item)
                else:
                    refused.append(RefusedOrder(item[0], server_refusal(err)))
        result = await self._update_if_newer(existing, synced_at)
        return result + ApplyResult(inserted=inserted, refused=tuple(refused))

    async def _update_if_newer(self, items: list[Item], synced_at: datetime) -> ApplyResult:
        waiting = {order.number: (position, order) for position, order in items}
        updated = stale = 0
        refused: list[RefusedOrder] = []
        for _ in range(MAX_CAS_ROUNDS):
            if not waiting:
                break
            current = await self._current_versions(list(waiting))
            operations: list[UpdateOne] = []
            attempted: list[Item] = []
            for number, (position, order) in waiting.items():
                if number not in current:
                    # Deleted since the insert failed: insert it unless someone else did.
                    operations.append(self._insert_unless_there(order, synced_at))
                    attempted.append((position, order))
                    continue
                raw = current[number]
                try:
                    newer = order.updated_at > coerce_instant(raw)
                except InvalidDate as exc:
                    # Never "older": TracOS's copy cannot be compared, so it is not overwritten.
                    what = "no updatedAt" if raw is MISSING else f"an unreadable updatedAt ({exc})"
                    reason = f"TracOS work order {number} has {what}; not overwritten"
                    refused.append(RefusedOrder(position, reason))
                    continue
                if newer:
                    operations.append(self._update_unless_changed(order, raw, synced_at))
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
                failed = {err["index"]: err for err in write_errors(exc)}
                for index, err in failed.items():
                    refused.append(RefusedOrder(attempted[index][0], server_refusal(err)))
                attempted = [item for i, item in enumerate(attempted) if i not in failed]
                matched = int(exc.details.get("nMatched", 0)) + int(exc.details.get("nUpserted", 0))
            if matched == len(attempted):
                updated += matched
                waiting = {}
                break
            # Some conditions missed: a concurrent writer got there first. Those whose stored
            # version is now ours were applied; the others are compared again.
            applied, waiting = await self._after_misses(attempted, current)
            updated += applied
        if waiting:
            log.warning("inbound.contended", numbers=sorted(waiting)[:10], count=len(waiting))
            raise FatalError(f"{len(waiting)} work orders kept changing while being written")
        return ApplyResult(updated=updated, stale=stale, refused=tuple(refused))

    async def _after_misses(
        self, attempted: list[Item], compared: dict[int, Any]
    ) -> tuple[int, dict[int, Item]]:
        """After a round whose conditions missed: how many of ``attempted`` hold our version
        now (applied), and the others, to compare again. A version that is still the one the
        condition was on (``compared``) missed on the fence alone: the lease is lost."""
        after = await self._current_versions([order.number for _, order in attempted])
        applied = 0
        waiting: dict[int, Item] = {}
        for position, order in attempted:
            stored = after.get(order.number, MISSING)
            if stored is not MISSING and same_instant(stored, order.updated_at):
                applied += 1
                continue
            unchanged = stored is not MISSING and stored == compared.get(order.number, MISSING)
            if self._fence is not None and unchanged:
                self._fence.lose()
                self._fence.check()
            waiting[order.number] = (position, order)
        return applied, waiting

    def _insert_unless_there(self, order: WorkOrder, synced_at: datetime) -> UpdateOne:
        check(self._fence)  # an upsert's insert is not fenced by its filter
        inserted = {**insert_document(order, synced_at), **stamp(self._fence)}
        return UpdateOne({"number": order.number}, {"$setOnInsert": inserted}, upsert=True)

    def _update_unless_changed(self, order: WorkOrder, raw: Any, synced_at: datetime) -> UpdateOne:
        """Compare-and-set on the ``updatedAt`` read (``raw``), and on the lease."""
        check(self._fence)  # a lease lost is said at once, not after rounds of misses
        return UpdateOne(
            fenced({"number": order.number, "updatedAt": raw}, self._fence),
            {"$set": {**update_fields(order, synced_at), **stamp(self._fence)}},
        )

    async def plan(
        self, orders: Sequence[WorkOrder], not_after: datetime | None = None
    ) -> ApplyResult:
        """What ``apply`` would do, read-only, with the same one-after-the-other semantics."""
        current: dict[int, Any] = await self._current_versions(
            list(dict.fromkeys(o.number for o in orders))
        )
        inserted = updated = stale = 0
        refused: list[RefusedOrder] = []
        ahead = {position for position, _ in dated_ahead(orders, not_after)}
        for position, order in enumerate(orders):
            if position in ahead:
                if holds_at_least(current.get(order.number, MISSING), order.updated_at):
                    stale += 1
                else:
                    refused.append(RefusedOrder(position, future_reason(order, not_after)))
                continue
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
                versions[doc["number"]] = doc.get("updatedAt", MISSING)
        return versions

    # -- outbound ------------------------------------------------------------------------------
