"""Inbound files that are still being written, vanish, are replaced or cannot be read mid-run;
the sync process itself killed mid-run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.builders import aged, client_record, read_json, write_json
from tests.conftest import Env
from tests.support.claims import left_in_claims
from tracos_sync.connectors.client_erp.files import FolderSettings, FolderSource
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import builtin_mapping


def test_young_files_wait_for_the_next_run(env: Env) -> None:
    old = write_json(env.inbound / "old.json", client_record(1))
    os.utime(old, (time.time() - 120, time.time() - 120))
    write_json(env.inbound / "fresh.json", client_record(2))
    result = env.cli("inbound", INBOUND_MIN_AGE_SECONDS="60")
    assert result.code == 0, result.output
    assert result.counts()["files"] == 1
    assert (env.processed / "old.json").exists()
    assert (env.inbound / "fresh.json").exists()


def source(folder: Path, **settings: Any) -> FolderSource:
    return FolderSource(FolderSettings(data_inbound_dir=folder, **settings), builtin_mapping())


async def take_all(src: FolderSource) -> list[InboundUnit]:
    return [unit async for batch in src.batches(100) for unit in batch]


async def test_file_vanishing_after_listing_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_json(folder / "a.json", client_record(1))
    write_json(folder / "b.json", client_record(2))
    src = source(folder)
    await src.prepare()
    listed = src._candidates()
    (folder / "a.json").unlink()  # another instance, or the client, took it meanwhile
    src._candidates = lambda: listed  # type: ignore[method-assign]
    units = await take_all(src)
    assert [u.name for u in units] == ["b.json"]
    await src.complete(units)
    assert [p.name for p in (folder / "processed").iterdir()] == ["b.json"]


async def test_file_replaced_after_claim_is_kept_for_the_next_run(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_json(folder / "7.json", client_record(7, summary="v1"))
    aged(folder / "7.json")  # its writer long done: claimed, then read
    src = source(folder)
    await src.prepare()
    original_read = src._taker.read_unit

    def read_then_client_rewrites(name: str, path: Path, size: int) -> InboundUnit:
        write_json(folder / "7.json", client_record(7, summary="v2"))
        return original_read(name, path, size)

    src._taker.read_unit = read_then_client_rewrites  # type: ignore[method-assign]
    first = await take_all(src)
    assert [u.records[0].title for u in first] == ["v1"]
    await src.complete(first)
    src._taker.read_unit = original_read  # type: ignore[method-assign]
    second = await take_all(src)
    assert [u.records[0].title for u in second] == ["v2"]
    await src.complete(second)
    assert read_json(folder / "processed" / "7.json")["summary"] == "v1"
    assert read_json(folder / "processed" / "7~1.json")["summary"] == "v2"


async def test_unreadable_file_is_left_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_json(folder / "locked.json", client_record(1))
    write_json(folder / "ok.json", client_record(2))
    src = source(folder)
    await src.prepare()
    original_read = src._taker.read_unit

    def deny(name: str, path: Path, size: int) -> InboundUnit:
        if path.name == "locked.json":
            raise PermissionError(13, "Permission denied")
        return original_read(name, path, size)

    src._taker.read_unit = deny  # type: ignore[method-assign]
    units = await take_all(src)
    assert [u.name for u in units] == ["ok.json"]
    await src.complete(units)
    await src.close()
    assert (folder / "locked.json").exists(), "left for the next run"
    assert not left_in_claims(folder)


async def test_consumer_stopping_early_gives_unhanded_claims_back(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for n in range(1, 11):
        write_json(folder / f"{n}.json", client_record(n))
    src = source(folder)
    await src.prepare()
    batches = src.batches(3)
    first = await anext(batches)
    await batches.aclose()
    await src.release(first)
    assert len(list(folder.glob("*.json"))) == 10
    assert not left_in_claims(folder)


@pytest.mark.parametrize("victim_signal", [signal.SIGKILL, signal.SIGTERM])
def test_sync_process_killed_mid_run_then_rerun(env: Env, victim_signal: int) -> None:
    total = 1500
    for n in range(1, total + 1):
        write_json(env.inbound / f"{n}.json", client_record(n))
    proc = env.popen("inbound", BATCH_SIZE="50")
    deadline = time.monotonic() + 60
    while len(list(env.processed.glob("*.json"))) < 300 if env.processed.exists() else True:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(victim_signal)
    proc.communicate(timeout=60)
    rerun = env.cli("inbound", BATCH_SIZE="50")
    assert rerun.code == 0, rerun.output
    numbers = [d["number"] for d in env.collection.find({}, {"number": 1})]
    assert sorted(numbers) == list(range(1, total + 1))
    archived = sorted(p.name for p in env.processed.glob("*.json"))
    assert archived == sorted(f"{n}.json" for n in range(1, total + 1))
    assert not list(env.inbound.glob("*.json"))
    assert not left_in_claims(env.inbound)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_a_run_finishes_the_batch_in_hand_and_says_so(env: Env, sig: int) -> None:
    for n in range(1, 3001):
        write_json(env.inbound / f"{n}.json", client_record(n))
    proc = env.popen("run", BATCH_SIZE="20")
    processed = env.processed
    deadline = time.monotonic() + 60
    while not (processed.exists() and len(os.listdir(processed)) >= 100):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "stopped by a signal" in err and err.count("run.summary") == 1, err
    left = len(list(env.inbound.glob("*.json")))
    archived = len(os.listdir(processed))
    assert left + archived == 3000, "every file archived or back in the inbound folder"
    assert not left_in_claims(env.inbound)
    assert env.collection.count_documents({}) >= archived
