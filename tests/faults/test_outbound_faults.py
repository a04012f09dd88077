"""Outbound writes that fail mark nothing; a document edited between export and mark stays
unsynced and goes out on the next run."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.builders import T0, read_json, tracos_doc
from tests.conftest import Env, Result
from tests.server import Server
from tracos_sync.connectors.client_erp.files import FolderSettings, FolderSink
from tracos_sync.domain.ports import Delivery
from tracos_sync.mapping import builtin_mapping
from tracos_sync.pipeline import RunStats, sync_outbound
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier


def assert_marked_means_written(env: Env, outbound: Path) -> int:
    """Every document marked synced has its file, with the content of the marked version."""
    marked = 0
    for doc in env.collection.find({"isSynced": True}):
        marked += 1
        path = outbound / f"{doc['number']}.json"
        assert path.exists(), f"{doc['number']} marked synced without a file"
        assert read_json(path)["orderNo"] == doc["number"]
    assert not list(outbound.glob(".*.tmp")), "temp files left behind"
    return marked


def test_file_size_limit_marks_nothing_and_exits_1(env: Env) -> None:
    env.collection.insert_many([tracos_doc(n) for n in range(1, 6)])

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    proc = subprocess.run(
        [sys.executable, "-m", "tracos_sync", "outbound"],
        cwd=env.root,
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
        check=False,
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    assert result.code == 1, result.output
    assert "File too large" in result.output
    assert env.collection.count_documents({"isSynced": True}) == 0
    assert not list(env.outbound.glob("*.json"))
    assert not list(env.outbound.glob(".*"))
    assert env.cli("outbound").code == 0
    assert env.collection.count_documents({"isSynced": True}) == 5


@contextlib.contextmanager
def tiny_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_marks_only_what_was_written(env: Env) -> None:
    env.collection.insert_many([tracos_doc(n, title="x" * 200) for n in range(1, 401)])
    with tiny_disk(env.root / "small", "64k") as outbound:
        result = env.cli("outbound", DATA_OUTBOUND_DIR=str(outbound), BATCH_SIZE="50")
        assert result.code == 1, result.output
        assert "No space left on device" in result.output
        marked = assert_marked_means_written(env, outbound)
        assert 0 < marked < 400
        assert result.counts()["exported"] == marked
        for leftover in outbound.glob("*.json"):
            leftover.unlink()  # the client consumed them: space again
    retry = env.cli("outbound", DATA_OUTBOUND_DIR=str(env.outbound))
    assert retry.code == 0, retry.output
    assert retry.counts()["exported"] == 400 - marked
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0


class EditingSink(FolderSink):
    """Delivers, then lets TracOS edit one of the delivered documents before the mark."""

    def __init__(self, settings: FolderSettings, edit: Any) -> None:
        super().__init__(settings, builtin_mapping())
        self._edit = edit

    async def deliver(self, orders: Any) -> Delivery:
        delivery = await super().deliver(orders)
        await self._edit()
        return delivery


async def test_document_edited_between_export_and_mark_goes_out_next_run(
    server: Server, tmp_path: Path
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.uri, tz_aware=True)
    repo = MongoWorkOrderRepository(client, f"e_{uuid.uuid4().hex[:8]}", "workorders", Retrier(5))
    collection = repo.raw_collection
    try:
        await repo.prepare()
        await collection.insert_many([tracos_doc(n) for n in (1, 2, 3)])
        edited_at = T0.replace(hour=13)

        async def edit() -> None:
            await collection.update_one(
                {"number": 2}, {"$set": {"title": "edited meanwhile", "updatedAt": edited_at}}
            )

        settings = FolderSettings(data_outbound_dir=tmp_path / "out")
        stats = RunStats()
        sink = EditingSink(settings, edit)
        await sink.prepare()
        await sync_outbound(repo, sink, stats, batch_size=10)
        await sink.close()
        assert (stats.exported, stats.requeued) == (2, 1)
        two = await collection.find_one({"number": 2})
        assert two is not None and "isSynced" not in two

        again = RunStats()
        plain = FolderSink(settings, builtin_mapping())
        await sync_outbound(repo, plain, again, batch_size=10)
        await plain.close()
        assert (again.exported, again.requeued) == (1, 0)
        out = read_json(tmp_path / "out" / "2.json")
        assert out["summary"] == "edited meanwhile"
        assert out["lastUpdateDate"] == "2024-05-01T13:00:00.000Z"
    finally:
        await client.drop_database(collection.database.name)
        await client.close()
