"""Running it as a service: dry run, check, replay, report, watch (with metrics and outages)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from tests.builders import T0, client_record, read_json, tracos_doc, write_json
from tests.conftest import Env
from tests.server import free_port
from tests.support.watching import metrics, own_server, stop, wait_until, watch_with_metrics


def snapshot(env: Env) -> list[dict[str, Any]]:
    return list(env.collection.find({}, sort=[("number", 1)]))


def test_dry_run_reports_everything_and_changes_nothing(env: Env) -> None:
    env.collection.insert_many([tracos_doc(1), tracos_doc(2), tracos_doc(50, isSynced=False)])
    write_json(env.inbound / "1.json", client_record(1, lastUpdateDate="2024-06-01T00:00:00Z"))
    write_json(env.inbound / "2.json", client_record(2))  # same timestamp: stale
    write_json(env.inbound / "3.json", client_record(3))
    write_json(
        env.inbound / "3-again.json", client_record(3, lastUpdateDate="2024-06-01T00:00:00Z")
    )
    write_json(env.inbound / "bad.json", client_record(4, orderNo="x"))
    before = snapshot(env)
    files_before = sorted(p.name for p in env.inbound.iterdir())
    result = env.cli("run", "--dry-run")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["inserted"], counts["updated"], counts["stale"], counts["rejected"]) == (
        1,
        2,
        1,
        1,
    )
    assert counts["exported"] == 3  # 1, 2 and 50 are unsynced in TracOS
    assert result.summary()["dry_run"] == "True"
    assert "inbound.would_reject" in result.output
    assert snapshot(env) == before
    assert sorted(p.name for p in env.inbound.iterdir()) == files_before
    assert not env.outbound.exists()
    assert [ix["name"] for ix in env.collection.list_indexes()] == ["_id_"], "no index created"


def test_check_reports_each_problem_on_its_own_line(env: Env) -> None:
    env.collection.insert_one(tracos_doc(1, updatedAt=T0))
    write_json(env.inbound / "1.json", client_record(9))
    fresh = env.cli("check")
    # A readiness probe on a new deployment: indexes the first sync creates are information.
    assert fresh.code == 0, fresh.output
    assert "ok    index on number" in fresh.stdout and "the first sync creates it" in fresh.stdout
    assert "ok    index for unsynced" in fresh.stdout
    assert env.cli("run").code == 0
    env.collection.insert_one(tracos_doc(2, updatedAt=T0))
    healthy = env.cli("check")
    assert healthy.code == 0, healthy.output
    lines = healthy.stdout
    assert "ok    database" in lines and "server version" in lines
    assert "ok    index on number" in lines and "unique" in lines
    assert "ok    unsynced work orders" in lines and "1 waiting, oldest waiting" in lines
    assert "ok    inbound files" in lines and "0 waiting" in lines
    blocker = env.root / "file"
    blocker.write_text("x")
    broken = env.cli(
        "check",
        MONGO_URI=f"mongodb://127.0.0.1:{free_port()}",
        MONGO_RETRY_SECONDS="1",
        DATA_OUTBOUND_DIR=str(blocker / "out"),
    )
    assert broken.code == 1
    assert "FAIL  database" in broken.stdout and "unreachable" in broken.stdout
    assert "FAIL  outbound folder" in broken.stdout


def test_replay_moves_rejected_files_back(env: Env) -> None:
    write_json(env.inbound / "a.json", client_record(1, orderNo="one"))
    write_json(env.inbound / "b.json", client_record(2, isDone=True))
    assert env.cli("inbound").code == 0
    assert (env.rejected / "a.json.error.json").exists()
    missing = env.cli("replay", "nope.json")
    assert missing.code == 1 and "replay.not_found" in missing.output
    one = env.cli("replay", "a.json")
    assert one.code == 0, one.output
    assert (env.inbound / "a.json").exists()
    assert not (env.rejected / "a.json").exists()
    assert not (env.rejected / "a.json.error.json").exists()
    assert (env.rejected / "b.json").exists()
    every = env.cli("replay")
    assert every.code == 0
    assert sorted(p.name for p in env.inbound.glob("*.json")) == ["a.json", "b.json"]
    assert not list(env.rejected.iterdir())


def test_report_file_has_counts_and_durations(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    env.collection.insert_one(tracos_doc(5))
    report = env.root / "reports" / "last-run.json"
    report.parent.mkdir()  # REPORT_PATH's folder must exist (checked at start-up)
    result = env.cli("run", REPORT_PATH=str(report))
    assert result.code == 0, result.output
    data = read_json(report)
    assert data["command"] == "run" and data["status"] == "ok" and data["error"] is None
    assert data["counts"]["inserted"] == 1 and data["counts"]["exported"] == 1
    assert set(data["seconds"]) == {"total", "inbound", "outbound"}
    failed = env.cli(
        "run",
        REPORT_PATH=str(report),
        MONGO_URI=f"mongodb://127.0.0.1:{free_port()}",
        MONGO_RETRY_SECONDS="1",
    )
    assert failed.code == 1
    data = read_json(report)
    assert data["status"] == "failed" and "unavailable" in data["error"]


def test_watch_syncs_files_and_changes_then_stops_on_sigterm(env: Env) -> None:
    proc, port = watch_with_metrics(env, WATCH_INTERVAL="30")
    try:
        wait_until(env.processed.exists, proc, 30)
        # A TracOS change goes out at once through the change stream (the interval is 30 s).
        env.collection.insert_one(tracos_doc(77))
        took = wait_until((env.outbound / "77.json").exists, proc, 10)
        assert took < 10
        wait_until(lambda: env.collection.count_documents({"isSynced": True}) == 1, proc, 10)
        page = metrics(port)
        assert 'tracos_sync_outcomes_total{integration="default",outcome="exported"} 1.0' in page
        assert "tracos_sync_cycle_seconds_bucket" in page
        assert 'tracos_sync_database_up{integration="default"} 1.0' in page
        assert 'tracos_sync_oldest_unsynced_seconds{integration="default"} 0.0' in page
    finally:
        result, took = stop(proc)
    assert result.code == 0, result.output
    assert took < 10
    assert "watch.stopped" in result.output
    assert "Traceback" not in result.output


def test_watch_polls_new_files_within_the_interval(env: Env) -> None:
    proc = env.popen("watch", WATCH_INTERVAL="0.5")
    try:
        wait_until(env.processed.exists, proc, 30)
        write_json(env.inbound / "5.json", client_record(5))
        wait_until((env.processed / "5.json").exists, proc, 10)
        assert env.collection.count_documents({"number": 5}) == 1
    finally:
        result, _ = stop(proc, signal.SIGINT)
    assert result.code == 0, result.output
    assert "run.summary" in result.output and "command=watch" in result.output


def test_watch_survives_a_database_outage(env: Env, tmp_path: Path) -> None:
    with own_server(env, tmp_path / "db") as own:
        proc = env.popen("watch", WATCH_INTERVAL="0.5", MONGO_RETRY_SECONDS="1")
        try:
            wait_until(env.processed.exists, proc, 30)
            own.kill()
            time.sleep(4)  # several cycles fail meanwhile
            write_json(env.inbound / "8.json", client_record(8))
            own.start()
            wait_until((env.processed / "8.json").exists, proc, 30)
        finally:
            result, _ = stop(proc)
    assert result.code == 0, result.output
    assert result.output.count("state='unavailable, retrying'") == 1, result.output
    assert result.output.count("mongo.retrying") == 0, "attempts are not logged one by one"
    assert "state=available" in result.output
    assert (env.inbound / "8.json").exists() is False
