"""The fence in MongoDB writes: what a replica writes on an integration's behalf is conditional
on the lease it holds, in the filter of the write itself.

Two conditions, checked by the server in the same single-document atomic operation as the
write (on mongod, a replica set's primary, or SecantusDB alike; no transaction):

- **the server's clock is before the lease's expiry** as this holder last renewed it
  (``$$NOW`` against ``expiresAt``): nobody can take a lease over before it expires by that same
  clock, so a write that passes comes before any take-over, and a write from a replica frozen
  past its lease fails, whatever document it touches;
- **the document's stamp is not from a later epoch** (``syncLease.epoch``): a document the next
  holder already wrote is never overwritten with an older holder's copy, even across a failover
  of the replica set to a primary whose clock is behind.

Every fenced write stamps the document with the epoch and holder (``syncLease``), from which the
replica tests check that one replica at a time served each integration.

An insert has no filter on the document it creates. New work orders, and the first state
document or dead letter of a key, are inserted by the server from the lease document instead
(``insert_from_lease``): an aggregation that matches the lease (this holder, this epoch, not
expired by ``$$NOW``) and merges the documents into the collection, so a replica frozen between
its own check and the insert inserts nothing once its lease has expired (the check and the
insert are one command on the server, though not one atomic write: a take-over between the two,
within that one command, is not excluded on mongod). A work order deleted while being updated is
inserted again only while ``Fence.writable`` (this process's monotonic deadline).
"""

from __future__ import annotations

from typing import Any

import bson

from tracos_sync.domain.fence import Fence

Doc = dict[str, Any]
STAMP = "syncLease"
NOW_MS: Doc = {"$toLong": "$$NOW"}


def fenced(condition: Doc, fence: Fence | None) -> Doc:
    """``condition`` and the fence of ``fence`` (unchanged without one: no leases in use)."""
    if fence is None:
        return condition
    expiry_ms = int(fence.lease.expires_at.timestamp() * 1000)
    return {
        **condition,
        "$and": [
            *condition.get("$and", []),
            {f"{STAMP}.epoch": {"$not": {"$gt": fence.epoch}}},
            {"$expr": {"$lt": [NOW_MS, expiry_ms]}},
        ],
    }


def stamp(fence: Fence | None) -> Doc:
    """The fields a fenced write sets: the epoch and holder it was written under."""
    if fence is None:
        return {}
    return {STAMP: {"epoch": fence.epoch, "holder": fence.lease.holder}}


def check(fence: Fence | None) -> None:
    """Before a write: raises ``LeaseLost`` when this replica may no longer write on it."""
    if fence is not None:
        fence.check()


# A merge command's documents, at most: far below the 16 MB a command may be.
MERGE_BYTES = 8 * 1024 * 1024


def insert_from_lease(
    fence: Fence, lease_id: str, documents: list[Doc], into: Doc, on: str
) -> list[list[Doc]]:
    """Pipelines (on the lease collection) that insert ``documents`` into ``into`` (``{"db",
    "coll"}``) if the lease is still this holder's, not expired by the server's clock; a
    document whose ``on`` value is there already is left as it is."""
    held: Doc = {
        "_id": lease_id,
        "holder": fence.lease.holder,
        "epoch": fence.epoch,
        "$expr": {"$lt": [NOW_MS, {"$toLong": "$expiresAt"}]},
    }
    pipelines: list[list[Doc]] = []
    for chunk in _chunks(documents):
        pipelines.append(
            [
                {"$match": held},
                {"$project": {"_id": 0, "document": {"$literal": chunk}}},
                {"$unwind": "$document"},
                {"$replaceWith": "$document"},
                {
                    "$merge": {
                        "into": into,
                        "on": on,
                        "whenMatched": "keepExisting",
                        "whenNotMatched": "insert",
                    }
                },
            ]
        )
    return pipelines


def _chunks(documents: list[Doc]) -> list[list[Doc]]:
    chunks: list[list[Doc]] = [[]]
    size = 0
    for document in documents:
        length = len(bson.encode(document))
        if chunks[-1] and size + length > MERGE_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(document)
        size += length
    return chunks
