"""Overlapping outbound runs: a delivered file never goes back in time.

Run A reads work order N (v1) and is held before it writes; TracOS edits N (v2); run B writes
v2 and marks N synced; A goes on. A must not put v1 back over v2: it counts N as superseded
(not requeued, since nothing is left to go out) and N stays synced with v2 in its file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.builders import T0, read_json, tracos_doc, write_json
from tests.server import Server
from tracos_sync.connectors.client_erp.files import FolderSettings, FolderSink
from tracos_sync.connectors.client_erp.files.durable import write_atomically_unless
from tracos_sync.connectors.client_erp.files.sink import holds_newer_than
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import Delivery
from tracos_sync.mapping import builtin_mapping
from tracos_sync.pipeline import RunStats, sync_outbound
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier


class HeldSink(FolderSink):
    """A sink held between the read of a page and its write until the test lets it go."""

    def __init__(self, settings: FolderSettings) -> None:
        super().__init__(settings, builtin_mapping())
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        self.reached.set()
        await self.go.wait()
        return await super().deliver(orders)


@pytest.fixture
async def repo(server: Server) -> AsyncIterator[MongoWorkOrderRepository]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri, tz_aware=True)
    repository = MongoWorkOrderRepository(
        client, f"o_{uuid.uuid4().hex[:8]}", "workorders", Retrier(5)
    )
    await repository.prepare()
    yield repository
    await client.drop_database(repository.raw_collection.database.name)
    await client.close()


async def outbound(repo: MongoWorkOrderRepository, sink: FolderSink) -> RunStats:
    stats = RunStats()
    await sink.prepare()
    try:
        await sync_outbound(repo, sink, stats, batch_size=10)
    finally:
        await sink.close()
    return stats


async def test_held_run_does_not_put_an_older_version_back(
    repo: MongoWorkOrderRepository, tmp_path: Path
) -> None:
    docs = repo.raw_collection
    await docs.insert_many([tracos_doc(1), tracos_doc(2)])
    settings = FolderSettings(data_outbound_dir=tmp_path / "out")
    held = HeldSink(settings)
    run_a = asyncio.create_task(outbound(repo, held))
    await held.reached.wait()  # A has read 1 and 2 at v1

    v2 = T0.replace(hour=13)
    await docs.update_one({"number": 1}, {"$set": {"title": "v2", "updatedAt": v2}})
    run_b = await outbound(repo, FolderSink(settings, builtin_mapping()))
    assert (run_b.exported, run_b.superseded) == (2, 0)

    held.go.set()
    stats_a = await run_a
    # 1: B's v2 is kept; 2: same version, rewritten identically (A's mark of it is a no-op
    # that still matches, so it counts as exported).
    assert (stats_a.superseded, stats_a.requeued, stats_a.exported) == (1, 0, 1)
    one = read_json(settings.data_outbound_dir / "1.json")
    assert (one["summary"], one["lastUpdateDate"]) == ("v2", "2024-05-01T13:00:00.000Z")
    doc = await docs.find_one({"number": 1})
    assert doc is not None and doc["isSynced"] is True and doc["title"] == "v2"
    again = await outbound(repo, FolderSink(settings, builtin_mapping()))
    assert (again.exported, again.superseded, again.requeued) == (0, 0, 0)
    assert not list(settings.data_outbound_dir.glob(".*")), "temp or lock files left behind"


async def test_file_newer_than_tracos_is_kept_and_the_document_not_marked(
    repo: MongoWorkOrderRepository, tmp_path: Path
) -> None:
    """The client holds a newer version than TracOS has (a file from elsewhere): not
    overwritten, and the document is not marked synced with content its file does not hold."""
    docs = repo.raw_collection
    await docs.insert_one(tracos_doc(7))
    out = tmp_path / "out"
    newer = {"orderNo": 7, "summary": "newer", "lastUpdateDate": "2024-05-02T00:00:00.000Z"}
    write_json(out / "7.json", newer)
    stats = await outbound(
        repo, FolderSink(FolderSettings(data_outbound_dir=out), builtin_mapping())
    )
    assert (stats.exported, stats.superseded, stats.requeued) == (0, 1, 0)
    assert read_json(out / "7.json") == newer
    doc = await docs.find_one({"number": 7})
    assert doc is not None and not doc.get("isSynced")


@pytest.mark.parametrize(
    "existing", [b"not json", b'{"orderNo": 7}', b"[]", b'{"lastUpdateDate": 1}']
)
def test_a_file_that_is_not_a_newer_copy_is_replaced(tmp_path: Path, existing: bytes) -> None:
    path = tmp_path / "7.json"
    path.write_bytes(existing)
    assert write_atomically_unless(path, b"new", holds_newer_than(T0, builtin_mapping())) is True
    assert path.read_bytes() == b"new"


HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


def test_compare_and_rename_wait_for_another_process_holding_the_folder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        done = threading.Event()

        def write() -> None:
            write_atomically_unless(tmp_path / "1.json", b"{}", lambda _: False)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        # Blocked for as long as the other process holds the lock (a bounded look suffices:
        # a writer that does not wait would be done at once).
        assert not done.wait(0.5)
        assert not (tmp_path / "1.json").exists()
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        writer.join(timeout=30)
        assert done.is_set() and (tmp_path / "1.json").read_bytes() == b"{}"
    finally:
        holder.kill()
        holder.wait()
