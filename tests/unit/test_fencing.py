"""The fence's MongoDB side that needs no server: the filter and stamp a fenced write carries,
and the merges that insert from the lease document."""

from __future__ import annotations

import asyncio
import math

import bson

from tests.support.leases import FakeClock, InMemoryLeaseStore
from tracos_sync.domain.fence import Fence
from tracos_sync.tracos.fencing import MERGE_BYTES, fenced, insert_from_lease, stamp

TTL = 15.0


def a_fence() -> Fence:
    lease = asyncio.run(InMemoryLeaseStore(FakeClock()).take("acme", "r1", TTL))
    assert lease is not None
    return Fence(lease, math.inf)


def test_without_a_fence_writes_are_as_they_always_were() -> None:
    assert fenced({"_id": 1}, None) == {"_id": 1}
    assert stamp(None) == {}


def test_a_fenced_filter_keeps_its_conditions_and_adds_the_epoch_and_the_expiry() -> None:
    fence = a_fence()
    where = fenced({"_id": 1, "$and": [{"a": 1}]}, fence)
    assert where["_id"] == 1
    assert where["$and"][0] == {"a": 1}
    assert {"syncLease.epoch": {"$not": {"$gt": 1}}} in where["$and"]
    expiry_ms = int(fence.lease.expires_at.timestamp() * 1000)
    assert {"$expr": {"$lt": [{"$toLong": "$$NOW"}, expiry_ms]}} in where["$and"]
    assert stamp(fence) == {"syncLease": {"epoch": 1, "holder": "r1"}}


def test_inserts_from_the_lease_go_in_commands_far_below_the_size_limit() -> None:
    """A batch of large documents is cut into several merges, none near 16 MB; each matches
    the lease (holder, epoch, not expired) before it inserts anything."""
    fence = a_fence()
    documents = [{"number": n, "title": "x" * 1_000_000} for n in range(30)]
    pipelines = insert_from_lease(
        fence, "integration:acme", documents, {"db": "d", "coll": "c"}, "number"
    )
    assert len(pipelines) > 1
    sizes = [len(bson.encode({"pipeline": pipeline})) for pipeline in pipelines]
    assert max(sizes) <= MERGE_BYTES + 1_100_000
    merged = [doc for p in pipelines for doc in p[1]["$project"]["document"]["$literal"]]
    assert merged == documents
    for pipeline in pipelines:
        assert pipeline[0]["$match"]["holder"] == "r1" and pipeline[0]["$match"]["epoch"] == 1
        assert "$expr" in pipeline[0]["$match"]
