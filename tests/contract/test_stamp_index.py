"""A take reads the highest stamp already on its integration's collections by one
key of a partial index, not a scan (issue 25, F2 of the lease-collection fixes): at 100,000 work
orders, a scan costs seconds on SecantusDB at each take, and the keeper's round
waits for it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pymongo import AsyncMongoClient, InsertOne

from tests.server import Server
from tracos_sync.tracos.indexes import STAMP_INDEX, STAMPED, has_stamp_index
from tracos_sync.tracos.leases import MongoLeaseStore
from tracos_sync.tracos.retry import Retrier

Doc = dict[str, Any]
ORDERS = 100_000
# A scan of 100,000 work orders: 2.4 s on SecantusDB (an idle machine); by the index: 0.02 s.
BOUND_SECONDS = 0.8


def store(client: AsyncMongoClient[Doc], database: str, leases: str) -> MongoLeaseStore:
    stamped = {"acme": [(database, "w"), (database, "state"), (database, "letters")]}
    return MongoLeaseStore(client, database, leases, Retrier(5), stamped=stamped)


async def test_a_new_lease_document_reads_the_highest_stamp_by_an_index(server: Server) -> None:
    database = f"stamps_{uuid.uuid4().hex[:8]}"
    async with AsyncMongoClient[Doc](server.uri) as client:
        orders = client[database]["w"]
        writes = [
            InsertOne(
                {"number": n, "isSynced": True}
                | (
                    {"syncLease": {"epoch": n // 1000 + 1, "holder": "old"}}
                    if n % 1000 == 0
                    else {}
                )
            )
            for n in range(ORDERS)
        ]
        await orders.bulk_write(writes, ordered=False)
        await client[database]["state"].insert_one({"_id": "k", "syncLease": {"epoch": 7}})

        first = await store(client, database, "leases").take("acme", "a", 5)  # builds the index
        assert first is not None and first.epoch == ORDERS // 1000 + 1
        assert has_stamp_index([ix async for ix in await orders.list_indexes()])

        started = time.perf_counter()
        second = await store(client, database, "other_leases").take("acme", "b", 5)
        elapsed = time.perf_counter() - started
        assert second is not None and second.epoch == first.epoch  # above the same stamps
        assert elapsed < BOUND_SECONDS, f"{elapsed:.2f} s: the stamps were scanned"

        plan = (
            await orders.find(STAMPED, {"syncLease.epoch": 1}).sort(STAMP_INDEX).limit(1).explain()
        )
        assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"]), plan
        assert plan["executionStats"]["totalDocsExamined"] <= ORDERS // 1000, plan
        await client.drop_database(database)
