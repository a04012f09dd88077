"""Watch mode woken by files arriving (file-system events): a file is taken as it arrives, not at
the next sweep; the sweep alone still takes every file when events are off; batches follow the
flow (one file under a trickle, the whole backlog under a flood)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pymongo import MongoClient

from tests.builders import client_record, tracos_doc, write_json
from tests.conftest import Env, Result
from tests.support.watching import own_server, stop, wait_until


def drop(folder: Path, number: int, name: str | None = None) -> float:
    """Write a client file the way a client should: a hidden temp name, then a rename into the
    folder. Returns the moment just before the rename."""
    name = name or f"{number}.json"
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(orjson.dumps(client_record(number)))
    moment = time.time()
    os.rename(tmp, folder / name)
    return moment


def summaries(result: Result) -> list[int]:
    """``files=`` of each sweep's summary line, in order."""
    return [
        int(m.group(1))
        for line in result.output.splitlines()
        if "run.summary" in line and (m := re.search(r"\bfiles=(\d+)", line))
    ]


def started(proc: subprocess.Popen[str], env: Env) -> None:
    wait_until(env.processed.exists, proc, 30)


def test_an_arriving_file_is_taken_at_once_not_at_the_next_sweep(env: Env) -> None:
    # An hour between sweeps: only the file's own event can explain it being taken.
    proc = env.popen("watch", WATCH_INTERVAL="3600")
    try:
        started(proc, env)
        for number in (1, 2, 3):
            dropped = drop(env.inbound, number)
            took = wait_until((env.processed / f"{number}.json").exists, proc, 20)
            assert took < 20
            doc = env.collection.find_one({"number": number})
            assert doc is not None and doc["syncedAt"].timestamp() >= dropped - 0.01
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "events=True" in result.output
    assert "watch.input_events" not in result.output, "the events worked throughout"


def test_with_events_off_the_sweep_still_takes_every_file(env: Env) -> None:
    proc = env.popen("watch", WATCH_INTERVAL="0.3", WATCH_EVENTS="0")
    try:
        started(proc, env)
        # Bursts and single files, none of them announced by an event.
        for first, count in ((1, 100), (101, 1), (102, 98), (200, 1)):
            for number in range(first, first + count):
                drop(env.inbound, number)
            last = env.processed / f"{first + count - 1}.json"
            wait_until(last.exists, proc, 60)
        wait_until(lambda: len(list(env.processed.iterdir())) == 200, proc, 60)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "events=False" in result.output
    assert env.collection.count_documents({}) == 200
    assert sorted(d["number"] for d in env.collection.find({}, {"number": 1})) == list(
        range(1, 201)
    )
    assert not list(env.inbound.glob("*.json"))


def test_batches_follow_the_flow_backlog_in_one_sweep_trickle_one_file_each(env: Env) -> None:
    for number in range(1, 1501):
        write_json(env.inbound / f"{number}.json", client_record(number))
    proc = env.popen("watch", WATCH_INTERVAL="3600", BATCH_SIZE="1000")
    try:
        wait_until(lambda: env.collection.count_documents({}) == 1500, proc, 120)
        for number in range(2001, 2006):  # one at a time
            drop(env.inbound, number)
            wait_until((env.processed / f"{number}.json").exists, proc, 20)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    files = summaries(result)
    assert files == [1500, 1, 1, 1, 1, 1], result.output


def test_a_young_file_is_woken_for_once_old_enough(env: Env) -> None:
    proc = env.popen("watch", WATCH_INTERVAL="3600", INBOUND_MIN_AGE_SECONDS="1")
    try:
        started(proc, env)
        path = write_json(env.inbound / "7.json", client_record(7))  # written in place
        written = path.stat().st_mtime
        wait_until((env.processed / "7.json").exists, proc, 20)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    doc = env.collection.find_one({"number": 7})
    assert doc is not None
    assert doc["syncedAt"].timestamp() >= written + 1 - 0.01, "not before its minimum age"


def test_a_bad_watch_events_value_is_refused_naming_it(env: Env) -> None:
    result = env.cli("watch", WATCH_EVENTS="sometimes")
    assert result.code == 2, result.output
    assert "WATCH_EVENTS" in result.output


def keep_dropping(folder: Path, first: int, until: Callable[[], bool], limit: float) -> int:
    """Drop a file every 20 ms until ``until()`` (files keep waking sweeps meanwhile)."""
    number, deadline = first, time.monotonic() + limit
    while not until() and time.monotonic() < deadline:
        drop(folder, number)
        number += 1
        time.sleep(0.02)
    return number - first


def test_a_tracos_change_goes_out_at_once_while_files_keep_arriving(env: Env) -> None:
    # A sweep follows the flow of files for a while, then outbound has its turn: a TracOS write
    # is not kept waiting by files that never stop coming.
    proc = env.popen("watch", WATCH_INTERVAL="3600")
    try:
        started(proc, env)
        flowing = keep_dropping(env.inbound, 1, lambda: False, 1.0)
        env.collection.insert_one(tracos_doc(5000))
        out = env.outbound / "5000.json"
        keep_dropping(env.inbound, 1 + flowing, out.exists, 20)
        assert out.exists(), "the change waited for the interval (an hour)"
        wait_until(lambda: not list(env.inbound.glob("*.json")), proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "watch.change_stream" not in result.output, "the stream worked throughout"


def test_without_a_change_stream_a_sweep_woken_by_files_still_reads_tracos(
    env: Env, tmp_path: Path
) -> None:
    # The server refuses change streams: nothing announces the TracOS write, and a sweep woken
    # by files still reads TracOS, so it goes out with the next file, not at the interval.
    with (
        own_server(env, tmp_path / "db", test_commands=True) as own,
        MongoClient[dict[str, Any]](own.uri, tz_aware=True) as client,
    ):
        client.admin.command(
            {
                "configureFailPoint": "failCommand",
                "mode": "alwaysOn",
                "data": {
                    "failCommands": ["aggregate"],
                    "errorCode": 40573,
                    "errmsg": "injected: no change streams here",
                },
            }
        )
        proc = env.popen("watch", WATCH_INTERVAL="3600")
        try:
            started(proc, env)
            drop(env.inbound, 1)
            wait_until((env.processed / "1.json").exists, proc, 20)
            client[env.database].workorders.insert_one(tracos_doc(5000))
            out = env.outbound / "5000.json"
            keep_dropping(env.inbound, 2, out.exists, 20)
            assert out.exists(), "the change waited for the interval (an hour)"
        finally:
            result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "watch.change_stream" in result.output and "not available" in result.output
