"""Server-side fault injection (``configureFailPoint``/``failCommand``): transient failures are
retried within MONGO_RETRY_SECONDS and the run succeeds; non-retryable ones are not retried, the
run exits 1, and nothing is lost."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env, failpoint
from tests.support.claims import left_in_claims

TRANSIENT = [
    pytest.param({"closeConnection": True}, id="network-error"),
    pytest.param({"errorCode": 91}, id="ShutdownInProgress"),
    pytest.param({"errorCode": 189}, id="PrimarySteppedDown"),
    pytest.param({"errorCode": 10107}, id="NotWritablePrimary"),
    pytest.param({"errorCode": 11600}, id="InterruptedAtShutdown"),
    pytest.param({"errorCode": 6}, id="HostUnreachable"),
]


def fault_uri(env: Env) -> str:
    # pymongo waits a heartbeat after "not primary"; keep that short in tests.
    return env.uri + "&heartbeatFrequencyMS=500"


def seed_both_sides(env: Env) -> None:
    for n in range(1, 6):
        write_json(env.inbound / f"{n}.json", client_record(n))
    write_json(
        env.inbound / "1-newer.json",
        client_record(1, summary="newer", lastUpdateDate="2024-07-01T00:00:00Z"),
    )
    env.collection.insert_many([tracos_doc(100 + n) for n in range(5)])


def assert_fully_synced(env: Env) -> None:
    numbers = sorted(d["number"] for d in env.collection.find())
    assert numbers == [1, 2, 3, 4, 5, 100, 101, 102, 103, 104]
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0
    assert len(list(env.processed.glob("*.json"))) == 6
    assert len(list(env.outbound.glob("*.json"))) == 5
    one = env.collection.find_one({"number": 1})
    assert one is not None and one["title"] == "newer"


@pytest.mark.parametrize("command", ["insert", "update", "find", "getMore"])
@pytest.mark.parametrize("fault", TRANSIENT)
def test_transient_failures_are_retried(
    env: Env, mongo: MongoClient[Any], command: str, fault: dict[str, Any]
) -> None:
    seed_both_sides(env)
    with failpoint(mongo, 3, failCommands=[command], **fault):
        result = env.cli("run", MONGO_URI=fault_uri(env), MONGO_RETRY_SECONDS="30", BATCH_SIZE="2")
    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    assert_fully_synced(env)


@pytest.mark.parametrize(
    ("command", "code"),
    [("insert", 2), ("find", 13), ("update", 14)],  # BadValue, Unauthorized, TypeMismatch
)
def test_non_retryable_failures_exit_1_and_lose_nothing(
    env: Env, mongo: MongoClient[Any], command: str, code: int
) -> None:
    seed_both_sides(env)
    with failpoint(mongo, 1, failCommands=[command], errorCode=code, errmsg="injected"):
        failed = env.cli("run", MONGO_URI=fault_uri(env), MONGO_RETRY_SECONDS="30")
    assert failed.code == 1, failed.output
    assert "mongo.retrying" not in failed.output, "a non-retryable error was retried"
    assert f"(code {code}" in failed.output
    assert not left_in_claims(env.inbound)
    # Every input is applied, still waiting in the inbound folder, or archived: none is lost.
    waiting = {p.name for p in env.inbound.glob("*.json")}
    archived = {p.name for p in env.processed.glob("*.json")}
    assert waiting | archived == {"1.json", "2.json", "3.json", "4.json", "5.json", "1-newer.json"}
    again = env.cli("run")
    assert again.code == 0, again.output
    assert_fully_synced(env)


def test_crash_between_write_and_mark_re_exports_the_same_content(
    env: Env, mongo: MongoClient[Any]
) -> None:
    env.collection.insert_many([tracos_doc(n) for n in range(1, 4)])
    with failpoint(mongo, 1, failCommands=["update"], errorCode=2, errmsg="injected"):
        failed = env.cli("outbound")
    assert failed.code == 1, failed.output
    first = {p.name: p.read_bytes() for p in env.outbound.glob("*.json")}
    assert set(first) == {"1.json", "2.json", "3.json"}
    assert env.collection.count_documents({"isSynced": True}) == 0, "nothing marked"
    again = env.cli("outbound")
    assert again.code == 0, again.output
    assert again.counts()["exported"] == 3
    assert {p.name: p.read_bytes() for p in env.outbound.glob("*.json")} == first
    assert read_json(env.outbound / "2.json")["orderNo"] == 2


@pytest.mark.parametrize(
    "code", [pytest.param(43, id="CursorNotFound"), pytest.param(237, id="CursorKilled")]
)
def test_a_lost_outbound_cursor_is_reopened(
    env: Env, mongo: MongoClient[dict[str, Any]], code: int
) -> None:
    """A run descheduled (or frozen) longer than the server's cursor timeout finds its cursor
    gone at the next getMore: the query is opened again, nothing is exported twice."""
    env.collection.insert_many([tracos_doc(n) for n in range(1, 31)])
    with failpoint(mongo, 1, failCommands=["getMore"], errorCode=code, errmsg="injected"):
        result = env.cli("outbound", BATCH_SIZE="5")
    assert result.code == 0, result.output
    assert f"(code {code}" in result.output  # retried, said
    counts = result.counts()
    assert (counts["exported"], counts["requeued"], counts["superseded"]) == (30, 0, 0)
    assert len(list(env.outbound.glob("*.json"))) == 30
    assert env.collection.count_documents({"isSynced": True}) == 30
