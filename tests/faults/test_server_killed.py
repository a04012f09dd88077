"""The database process SIGKILLed in the middle of a batch, restarted on the same data: after
the sync is run again every input is applied exactly once and every TracOS change is exported."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env, Result
from tests.server import Server
from tests.support.claims import left_in_claims

N = 2000


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(storage=tmp_path / "db").start()
    yield srv
    srv.stop()


def collection(srv: Server, env: Env) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(srv.uri, tz_aware=True)
    return client, client[env.database]["workorders"]


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, "the run ended before the fault could be injected"
        assert time.monotonic() < deadline, "timed out waiting to inject the fault"
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str]) -> Result:
    out, err = proc.communicate(timeout=120)
    return Result(proc.returncode, out, err)


def count(folder: Path) -> int:
    return sum(1 for _ in folder.glob("*.json")) if folder.exists() else 0


def test_killed_during_inbound_then_rerun_applies_everything_once(
    env: Env, own_server: Server
) -> None:
    env.uri = own_server.uri
    for n in range(1, N + 1):
        write_json(env.inbound / f"{n}.json", client_record(n))
    proc = env.popen("inbound", BATCH_SIZE="50", MONGO_RETRY_SECONDS="2")
    wait_for(lambda: count(env.processed) >= N // 5, proc)
    own_server.kill()
    archived_before_kill = {p.name for p in env.processed.glob("*.json")}
    first = finish(proc)
    assert first.code == 1, first.output
    assert "run.failed" in first.output and "Traceback" not in first.output

    own_server.start()
    client, docs = collection(own_server, env)
    with client:
        # Journaled before archived: every file archived before the crash survived it.
        durable = {f"{d['number']}.json" for d in docs.find({}, {"number": 1})}
        assert archived_before_kill <= durable, archived_before_kill - durable
        second = env.cli("inbound", BATCH_SIZE="50")
        assert second.code == 0, second.output
        numbers = [d["number"] for d in docs.find({}, {"number": 1})]
        assert sorted(numbers) == list(range(1, N + 1)), "lost or duplicated work orders"
        assert docs.count_documents({"isSynced": True}) == N
    archived = sorted(p.name for p in env.processed.glob("*.json"))
    assert archived == sorted(f"{n}.json" for n in range(1, N + 1))
    assert count(env.inbound) == 0
    assert not left_in_claims(env.inbound)
    assert count(env.rejected) == 0


@pytest.mark.slow
def test_killed_during_outbound_then_rerun_exports_everything(env: Env, own_server: Server) -> None:
    env.uri = own_server.uri
    client, docs = collection(own_server, env)
    with client:
        docs.insert_many([tracos_doc(n) for n in range(1, N + 1)])
    proc = env.popen("outbound", BATCH_SIZE="50", MONGO_RETRY_SECONDS="2")
    wait_for(lambda: count(env.outbound) >= N // 5, proc)
    own_server.kill()
    first = finish(proc)
    assert first.code in (0, 1), first.output  # 0 only if it finished before the kill landed

    own_server.start()
    client, docs = collection(own_server, env)
    with client:
        second = env.cli("outbound", BATCH_SIZE="50")
        assert second.code == 0, second.output
        assert docs.count_documents({"isSynced": {"$ne": True}}) == 0
        assert docs.count_documents({}) == N
    files = {p.name for p in env.outbound.glob("*.json")}
    assert files == {f"{n}.json" for n in range(1, N + 1)}
    assert not list(env.outbound.glob(".*.tmp")), "a temp file was left behind"
    sample = read_json(env.outbound / "1234.json")
    assert sample["orderNo"] == 1234 and sample["summary"] == "TracOS order 1234"


def test_server_back_within_the_retry_budget_run_succeeds(env: Env, own_server: Server) -> None:
    env.uri = own_server.uri
    env.database = f"t_{uuid.uuid4().hex[:8]}"
    for n in range(1, N + 1):
        write_json(env.inbound / f"{n}.json", client_record(n))
    # Per-attempt timeout is a quarter of the budget (3 s): down for 4 s outlasts the driver's
    # own single retry, so our backoff must carry the run.
    proc = env.popen("run", BATCH_SIZE="50", MONGO_RETRY_SECONDS="12")
    wait_for(lambda: count(env.processed) >= N // 5, proc)
    own_server.kill()
    time.sleep(4.0)
    own_server.start()
    result = finish(proc)
    assert result.code == 0, result.output
    assert "mongo.retrying" in result.output
    client, docs = collection(own_server, env)
    with client:
        numbers = [d["number"] for d in docs.find({}, {"number": 1})]
    assert sorted(numbers) == list(range(1, N + 1))
    assert count(env.processed) == N
