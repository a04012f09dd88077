"""New work orders inserted by the server from the lease document (``fencing.insert_from_lease``),
with LEASES: a replica frozen between its own check and its insert inserts nothing once its
lease has expired, and a document already there is left as it is (then compared and updated by
the caller, as after a duplicate key)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from tracos_sync.domain.fence import Fence

from .fencing import STAMP, insert_from_lease
from .leases import lease_id
from .retry import describe, is_transient
from .upsert_rules import LOOKUP_CHUNK

Doc = dict[str, Any]


class MergeRefused(ValueError):
    """The server refused a document of an insert from the lease: the batch is halved until
    that document is found (as one the driver cannot encode)."""


async def insert_new(
    collection: AsyncCollection[Doc],
    durable: AsyncCollection[Doc],
    leases: AsyncCollection[Doc],
    fence: Fence,
    documents: list[Doc],
) -> set[int]:
    """Insert into ``durable`` the documents whose number is not there yet: the numbers
    inserted. One still missing afterwards was refused by the fence: the lease is lost
    (``LeaseLost``). ``leases`` is written with ``durable``'s (journaled) write concern."""
    leases = leases.with_options(write_concern=durable.write_concern)
    token = ObjectId()  # tells this call's inserts from documents already there
    marked = [{**doc, STAMP: {**doc[STAMP], "write": token}} for doc in documents]
    target = {"db": durable.database.name, "coll": durable.name}
    for pipeline in insert_from_lease(fence, lease_id(fence.lease.name), marked, target, "number"):
        try:
            await (await leases.aggregate(pipeline)).to_list()
        except OperationFailure as exc:
            if is_transient(exc):
                raise
            # A merge stops at the first document the server refuses.
            raise MergeRefused(describe(exc)) from exc
    numbers = [doc["number"] for doc in documents]
    present: dict[int, Any] = {}
    for start in range(0, len(numbers), LOOKUP_CHUNK):
        query = {"number": {"$in": numbers[start : start + LOOKUP_CHUNK]}}
        async for doc in collection.find(query, {"number": 1, f"{STAMP}.write": 1}):
            present[doc["number"]] = (doc.get(STAMP) or {}).get("write")
    if len(present) < len(set(numbers)):
        fence.lose()
        fence.check()
    return {number for number, write in present.items() if write == token}
