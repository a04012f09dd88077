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

An insert has no filter: it is made only while ``Fence.writable`` (this process's monotonic
deadline, before the store's expiry), and cannot overwrite anything (the unique index on number,
the ``_id`` of state documents: the next holder's copy is there first, and the insert fails).
"""

from __future__ import annotations

from typing import Any

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
