"""SPEC §8 "No wait is unbounded": a neighbour frozen while it holds the outbound folder's lock
(SIGSTOP here; ``docker pause`` or a hung network file system alike) delays only the files that
lock guards, for LOCK_TIMEOUT_SECONDS, with one line naming the holder; SIGTERM still stops the
run; watch goes on with inbound and its metrics tell a held lock from an outage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import client_record, tracos_doc, write_json
from tests.conftest import Env, Result
from tests.support.mounts import SHM, folder_in
from tests.support.watching import metrics, metrics_or_empty, stop, wait_until, watch_with_metrics

# Takes an exclusive flock on the folder, says so, and waits to be frozen (or killed).
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(3600)
"""


@pytest.fixture
def frozen_holder(env: Env) -> Iterator[subprocess.Popen[str]]:
    """A process holding the outbound folder's lock, then stopped (SIGSTOP) with it held."""
    env.outbound.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(env.outbound)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        os.kill(holder.pid, signal.SIGSTOP)
        yield holder
    finally:
        holder.kill()  # SIGKILL ends a stopped process too
        holder.wait(10)


def temps_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def all_deferred(env: Env, result: Result, holder: subprocess.Popen[str], orders: int) -> str:
    """A run (exit 1) deferred all ``orders`` it had to export, wrote and left nothing, marked
    none synced, and said so in one line naming the holder of the lock, which is returned."""
    assert result.code == 1, result.output
    counts = result.counts()
    assert counts["deferred"] == orders and counts["exported"] == 0, result.output
    lines = [line for line in result.output.splitlines() if "outbound.deferred" in line]
    assert len(lines) == 1, result.output
    assert f"pid {holder.pid} (python" in lines[0], lines[0]
    assert env.collection.count_documents({"isSynced": True, "number": {"$lte": orders}}) == 0
    assert not temps_in(env.outbound)  # nothing left behind
    assert not list(env.outbound.glob("*.json"))
    return lines[0]


def stopped_while_waiting(env: Env, command: str, **settings: str) -> tuple[Result, float]:
    """``command`` started with five orders to export and a lock wait longer than any test, then
    stopped with SIGTERM once it waits for the lock: its result and how long it took to stop.
    Nothing may be marked synced, nor left behind."""
    env.collection.insert_many([tracos_doc(n) for n in range(1, 6)])
    proc = env.popen(command, LOCK_TIMEOUT_SECONDS="600", **settings)
    try:
        # Its temp files are written before the lock is asked for: it is waiting now.
        wait_until(lambda: bool(temps_in(env.outbound)), proc, 60)
        result, took = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 10, f"{took:.1f}s\n{result.output}"
    assert env.collection.count_documents({"isSynced": True}) == 0
    return result, took


def test_run_leaves_the_locked_folder_for_later_and_names_the_holder(
    env: Env, frozen_holder: subprocess.Popen[str]
) -> None:
    env.collection.insert_many([tracos_doc(n) for n in range(1, 81)])
    write_json(env.inbound / "900.json", client_record(900))
    started = time.monotonic()
    result = env.cli("run", timeout=60, LOCK_TIMEOUT_SECONDS="1", BATCH_SIZE="10")
    took = time.monotonic() - started
    # One deadline for the run, not one per file or per page (80 files, 8 pages: 16 s).
    assert took < 8, f"{took:.1f}s\n{result.output}"
    all_deferred(env, result, frozen_holder, 80)
    assert result.summary()["status"] == "partial", result.output
    assert result.counts()["inserted"] == 1, result.output  # inbound was not held up

    frozen_holder.kill()
    frozen_holder.wait(10)
    again = env.cli("run")
    assert again.code == 0, again.output
    assert again.counts()["exported"] == 80 and again.counts()["deferred"] == 0


def test_a_frozen_holder_costs_a_run_one_deadline_not_one_per_wave_of_writers(
    env: Env, frozen_holder: subprocess.Popen[str]
) -> None:
    # One page of 240: 30 waves of 8 writer threads. Each wave paid a whole deadline (30 s here,
    # 21 minutes with the defaults and 3000 orders) before the first wait's running out made the
    # others give up.
    env.collection.insert_many([tracos_doc(n) for n in range(1, 241)])
    started = time.monotonic()
    result = env.cli("outbound", timeout=90, LOCK_TIMEOUT_SECONDS="1", BATCH_SIZE="1000")
    took = time.monotonic() - started
    assert took < 7, f"{took:.1f}s\n{result.output}"
    line = all_deferred(env, result, frozen_holder, 240)
    assert "for 1." in line, line  # the wait that ran out, not a file that gave up


@pytest.fixture
def fast_outbound(tmp_path: Path) -> Iterator[Path]:
    """An outbound folder on tmpfs when there is one: fsync costs nothing there, so the writer
    threads spend their time taking turns on the folder's lock, where a pause has to find them."""
    with folder_in(SHM if SHM.is_dir() else tmp_path, "tracos-out-") as folder:
        yield folder


@pytest.mark.slow
def test_a_run_paused_longer_than_the_deadline_defers_nothing_and_blames_nobody(
    env: Env, fast_outbound: Path
) -> None:
    # A lone run frozen (a paused VM or container) while its writer threads wait on each other
    # for the folder: the pause is no one's holding of the lock. It used to defer its own files,
    # blaming "another process" or its own pid (exit 1).
    env.collection.insert_many([tracos_doc(n) for n in range(1, 1501)])
    proc = env.popen(
        "outbound",
        LOCK_TIMEOUT_SECONDS="0.3",
        BATCH_SIZE="1000",
        DATA_OUTBOUND_DIR=str(fast_outbound),
    )
    pauses = 0
    try:
        # Paused at its first file written, then again after each 60 more: the writer threads
        # wait for one another only now and then, and some pause has to find one waiting. On a
        # loaded machine this loop sees the folder less often and misses some steps (8 pauses
        # of 15 with a step of 100 once): the step leaves room for that.
        seen = 0
        while proc.poll() is None:
            if len(os.listdir(fast_outbound)) > seen:
                os.kill(proc.pid, signal.SIGSTOP)
                time.sleep(0.5)  # well past LOCK_TIMEOUT_SECONDS
                pauses += 1
                seen = len(os.listdir(fast_outbound)) + 59
                os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.001)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    output = out + err
    assert "outbound.deferred" not in output, output
    assert proc.returncode == 0, output
    counts = Result(proc.returncode, out, err).counts()
    assert counts["deferred"] == 0 and counts["exported"] == 1500, output
    assert env.collection.count_documents({"isSynced": True}) == 1500
    assert pauses >= 10, pauses


def test_sigterm_stops_a_run_waiting_for_a_frozen_holder(
    env: Env, frozen_holder: subprocess.Popen[str]
) -> None:
    result, _ = stopped_while_waiting(env, "outbound")
    assert result.code == 1, result.output
    assert not temps_in(env.outbound)


def test_watch_goes_on_with_inbound_and_tells_a_held_lock_from_an_outage(
    env: Env, frozen_holder: subprocess.Popen[str]
) -> None:
    # 240 to go out: 30 waves of writer threads, each of which used to pay a whole deadline
    # before the sweep let inbound have its turn again.
    env.collection.insert_many([tracos_doc(n) for n in range(1, 241)])
    proc, port = watch_with_metrics(
        env, WATCH_INTERVAL="0.3", LOCK_TIMEOUT_SECONDS="1", BATCH_SIZE="1000"
    )
    locked = 'tracos_sync_destination_locked{integration="default"} 1.0'
    try:
        wait_until(lambda: locked in metrics_or_empty(port), proc, 15)
        write_json(env.inbound / "5.json", client_record(5))
        # Later sweeps do not wait for the held lock again: the file goes in at once.
        took = wait_until((env.processed / "5.json").exists, proc, 30)
        assert took < 5, took
        page = metrics(port)
        assert locked in page
        assert 'tracos_sync_database_up{integration="default"} 1.0' in page
        assert 'tracos_sync_destination_up{integration="default"} 1.0' in page
        assert 'tracos_sync_cycle_failures_total{integration="default"} 0.0' in page
        frozen_holder.kill()
        frozen_holder.wait(10)
        wait_until((env.outbound / "1.json").exists, proc, 30)
        unlocked = 'tracos_sync_destination_locked{integration="default"} 0.0'
        wait_until(lambda: unlocked in metrics(port), proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    # Said once while it lasted, not at every sweep.
    assert result.output.count("outbound.deferred") == 1, result.output
    assert "watch.database" not in result.output


def test_sigterm_stops_watch_waiting_for_a_frozen_holder(
    env: Env, frozen_holder: subprocess.Popen[str]
) -> None:
    result, _ = stopped_while_waiting(env, "watch", WATCH_INTERVAL="0.3")
    assert result.code == 0, result.output
