"""Watch mode for weeks beside cron runs and other tools: it never silently stops, never lets a
duplicate in, tells a folder failure from a database outage, and exits within seconds of
SIGTERM whatever the database is doing."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, tracos_doc, write_json
from tests.conftest import Env, failpoint
from tests.server import free_port
from tests.support.mounts import can_mount, read_only
from tests.support.watching import (
    metrics,
    metrics_or_empty,
    own_server,
    stop,
    wait_until,
    watch_with_metrics,
)


def test_index_dropped_while_watch_runs_is_rebuilt_before_any_duplicate(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    proc = env.popen("watch", WATCH_INTERVAL="0.3")
    try:
        wait_until((env.processed / "1.json").exists, proc, 30)
        # Another tool drops the index (or the collection is re-imported without it).
        env.collection.drop_index("number_1")
        write_json(env.inbound / "2.json", client_record(1, lastUpdateDate="2025-01-01T00:00:00Z"))
        wait_until((env.processed / "2.json").exists, proc, 30)
        write_json(env.inbound / "3.json", client_record(3))
        wait_until((env.processed / "3.json").exists, proc, 30)
    except AssertionError as failed:  # what the watch was doing (see the test below)
        result, _ = stop(proc)
        raise AssertionError(f"{failed}; the watch said:\n{result.output}") from failed
    except BaseException:
        proc.kill()
        raise
    result, _ = stop(proc)
    assert result.code == 0, result.output
    assert env.collection.count_documents({"number": 1}) == 1
    assert env.collection.find_one({"number": 1})["updatedAt"].year == 2025
    unique = [ix for ix in env.collection.list_indexes() if ix["name"] == "number_1"]
    assert unique and unique[0].get("unique")
    assert "mongo.index_created" in result.output


def test_index_dropped_between_two_batches_of_one_sweep_is_rebuilt_before_the_second(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    """The sweep's index check is not enough: a sweep writes batch after batch (it follows a
    flow of files), and the index may go between two. Here the first batch's write is held by
    the server while the index is dropped; the second batch, the same number again, must be an
    update, not a second document (the flaky failure of the test above: the files of one sweep
    let a duplicate in, and every later sweep failed to rebuild the index)."""
    write_json(env.inbound / "1.json", client_record(1))
    write_json(env.inbound / "2.json", client_record(1, lastUpdateDate="2025-01-01T00:00:00Z"))
    # One file a batch; the first insert held 5 s (the index check before it already done).
    held = {"failCommands": ["insert"], "appName": "tracos-sync", "blockConnection": True}
    with failpoint(mongo, 1, **held, blockTimeMS=5_000):
        proc = env.popen("watch", WATCH_INTERVAL="0.3", BATCH_SIZE="1")
        try:
            # Both claimed: the sweep has checked the index, its first write is held.
            wait_until(lambda: not list(env.inbound.glob("*.json")), proc, 30)
            env.collection.drop_index("number_1")
            wait_until((env.processed / "2.json").exists, proc, 30)
            assert env.collection.count_documents({"number": 1}) == 1, "a second document"
            write_json(env.inbound / "3.json", client_record(3))
            wait_until((env.processed / "3.json").exists, proc, 30)
        except AssertionError as failed:
            result, _ = stop(proc)
            raise AssertionError(f"{failed}; the watch said:\n{result.output}") from failed
        except BaseException:
            proc.kill()
            raise
    result, _ = stop(proc)
    assert result.code == 0, result.output
    assert env.collection.find_one({"number": 1})["updatedAt"].year == 2025
    unique = [ix for ix in env.collection.list_indexes() if ix["name"] == "number_1"]
    assert unique and unique[0].get("unique")


def test_sigterm_during_a_database_outage_exits_within_seconds(env: Env, tmp_path: Path) -> None:
    with own_server(env, tmp_path / "db") as own:
        proc = env.popen("watch", WATCH_INTERVAL="0.3", MONGO_RETRY_SECONDS="60")
        wait_until(env.processed.exists, proc, 30)
        own.kill()
        write_json(env.inbound / "1.json", client_record(1))
        time.sleep(1.5)  # the sweep is now inside the retry budget (60 s)
        result, took = stop(proc)
    assert result.code == 0, result.output
    assert took < 8, f"took {took:.1f}s to stop"
    assert "watch.stopped" in result.output
    # The claimed file was given back, not stranded.
    assert (env.inbound / "1.json").exists()


def test_folder_failure_is_not_called_a_database_outage(env: Env) -> None:
    blocker = env.root / "blocker"
    blocker.write_text("a file where the outbound folder should be")
    env.collection.insert_one(tracos_doc(1))
    proc, port = watch_with_metrics(
        env, WATCH_INTERVAL="0.3", DATA_OUTBOUND_DIR=str(blocker / "out")
    )
    try:
        failures = 'tracos_sync_cycle_failures_total{integration="default"} 1.0'
        wait_until(lambda: failures in metrics_or_empty(port), proc, 30)
        page = metrics(port)
        assert 'tracos_sync_destination_up{integration="default"} 0.0' in page
        assert 'tracos_sync_database_up{integration="default"} 1.0' in page
        # Inbound still works meanwhile.
        write_json(env.inbound / "5.json", client_record(5))
        wait_until((env.processed / "5.json").exists, proc, 30)
        assert 'tracos_sync_inbound_waiting{integration="default"} 0.0' in metrics(port)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "watch.destination" in result.output and "unwritable" in result.output
    assert "watch.database" not in result.output


def test_report_that_cannot_be_written_does_not_stop_watch(env: Env) -> None:
    report = env.root / "report.json"
    (env.root / ".report.json.tmp").mkdir()  # its temporary file cannot be written
    proc = env.popen("watch", WATCH_INTERVAL="0.3", REPORT_PATH=str(report))
    try:
        write_json(env.inbound / "1.json", client_record(1))
        wait_until((env.processed / "1.json").exists, proc, 30)
        write_json(env.inbound / "2.json", client_record(2))
        wait_until((env.processed / "2.json").exists, proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "report.failed" in result.output and "run.crashed" not in result.output
    left = [path for path in env.root.glob(".*.tmp") if not path.is_dir()]  # not the blocker
    assert not left, "no temp file left behind"


def test_dropped_connections_during_metrics_are_survived(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    port = free_port()
    proc = env.popen("watch", WATCH_INTERVAL="0.3", METRICS_PORT=str(port))
    try:
        wait_until(env.processed.exists, proc, 30)
        with failpoint(mongo, 6, failCommands=["find", "aggregate"], closeConnection=True):
            time.sleep(1.5)
        write_json(env.inbound / "1.json", client_record(1))
        wait_until((env.processed / "1.json").exists, proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "run.crashed" not in result.output and "Traceback" not in result.output


def test_a_command_the_server_holds_does_not_stall_a_run(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    env.collection.insert_one(tracos_doc(1))
    started = time.monotonic()
    with failpoint(mongo, 1, failCommands=["find"], blockConnection=True, blockTimeMS=60_000):
        result = env.cli("outbound", MONGO_TIMEOUT_SECONDS="1", MONGO_RETRY_SECONDS="5")
    took = time.monotonic() - started
    assert took < 20, f"one held command stalled the run for {took:.0f}s"
    assert result.code == 0, result.output
    assert (env.outbound / "1.json").exists()


def test_a_report_that_cannot_be_written_fails_the_run_and_its_summary_says_so(env: Env) -> None:
    report = env.root / "report.json"
    # Past the start-up check (its folder is there and writable), its temporary file is not.
    (env.root / ".report.json.tmp").mkdir()
    write_json(env.inbound / "1.json", client_record(1))
    result = env.cli("run", REPORT_PATH=str(report))
    assert result.code == 1, result.output
    lines = result.output.splitlines()
    assert "report.failed" in lines[-2] and "run.summary" in lines[-1], result.output
    assert result.summary()["status"] == "failed"
    assert (env.processed / "1.json").exists(), "the sync itself was done"


FAILED_SWEEPS = re.compile(r'tracos_sync_cycle_failures_total\{integration="default"\} (\d+)')


def sweeps_failed(port: int) -> int:
    """How many of watch's sweeps have failed, from its metrics (0 before it serves them)."""
    found = FAILED_SWEEPS.search(metrics_or_empty(port))
    return int(found.group(1)) if found else 0


def test_both_directions_failing_is_said_once_not_at_every_sweep(env: Env) -> None:
    blocker = env.root / "blocker"
    blocker.write_text("a file where the folders should be")
    proc, port = watch_with_metrics(
        env,
        WATCH_INTERVAL="0.1",
        DATA_INBOUND_DIR=str(blocker / "in"),
        DATA_OUTBOUND_DIR=str(blocker / "out"),
    )
    try:
        wait_until(lambda: sweeps_failed(port) >= 5, proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert result.output.count("watch.destination") == 1, result.output
    assert "run.failed" not in result.output, result.output


def test_a_sweep_that_cannot_archive_counts_each_file_once(env: Env) -> None:
    """processed/ read-only (a bind mount: chmod does not stop root) while watch runs: each
    failed sweep applies the files once (stale) and gives them back; it does not take them
    again as new arrivals in the same sweep, which counted them twice (files=19 stale=38)."""
    if not can_mount(env.root):
        pytest.skip("needs bind mounts (root)")
    for n in range(1, 20):
        write_json(env.inbound / f"{n}.json", client_record(n))
    assert env.cli("inbound").code == 0
    for n in range(1, 20):  # the same versions again: each is stale
        write_json(env.inbound / f"again-{n}.json", client_record(n))
    with read_only(env.processed):
        proc, port = watch_with_metrics(env, WATCH_INTERVAL="0.2")
        try:
            wait_until(lambda: sweeps_failed(port) >= 4, proc, 60)
        finally:
            result, _ = stop(proc)
    summaries = [line for line in result.output.splitlines() if "run.summary" in line]
    failed = [line for line in summaries if "status=failed" in line]
    assert len(failed) >= 3, result.output
    for line in failed:
        assert "stale=19 " in line and "files=19 " in line, line
    assert sorted(p.name for p in env.inbound.glob("*.json")) == sorted(
        f"again-{n}.json" for n in range(1, 20)
    )
