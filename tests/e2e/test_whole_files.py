"""The folder connector takes a file whole, at any size, dated anything (issue 20): a file still
being written is left for later rather than rejected, a file written to while in hand goes back,
a file dated ahead of this host is taken, a large export is decoded in bounded memory, and a file
in hand at two consecutive crashes is quarantined. Every case through the CLI, against the real
server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.builders import aged, client_record, read_json
from tests.conftest import Env
from tests.support.mounts import SHM, folder_in
from tests.support.watching import wait_until

POISON = "in hand at 2 consecutive crashes (suspected poison)"


def export(numbers: range, **overrides: Any) -> bytes:
    return orjson.dumps([client_record(n, **overrides) for n in numbers])


def logged(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a process wrote so far (a line being written is left out)."""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


class Watch:
    """``tracos-sync watch`` with its JSON log going to a file that the test can read while it
    runs."""

    def __init__(self, env: Env, **overrides: str) -> None:
        self.log = env.root / "watch.log"
        self._sink = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tracos_sync", "watch"],
            cwd=env.root,
            env=env.environ(LOG_FORMAT="json", **overrides),
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def lines(self, event: str) -> list[dict[str, Any]]:
        return [line for line in logged(self.log) if line.get("event") == event]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._sink.close()
        return code


@pytest.fixture
def watch(env: Env) -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for one in started:
        if one.proc.poll() is None:
            one.stop()


def rejected_names(env: Env) -> list[str]:
    return sorted(os.listdir(env.rejected)) if env.rejected.exists() else []


# 1. A file is taken whole.


@pytest.mark.parametrize("written", ["half", "truncated to rewrite in place"])
def test_a_run_during_an_export_leaves_the_partial_file_and_takes_it_once_complete(
    env: Env, written: str
) -> None:
    data = export(range(1, 4))
    env.inbound.mkdir(parents=True)
    path = env.inbound / "777.json"
    cut = len(data) // 2 if written == "half" else 0
    path.write_bytes(data[:cut])  # the writer is at it (cron started meanwhile)
    # A settle time no loaded test machine outlasts between the write and the look.
    first = env.cli("run", INBOUND_SETTLE_SECONDS="60")
    assert first.code == 0, first.output
    assert (first.counts()["files"], first.counts()["rejected"]) == (0, 0), first.output
    assert "may still be being written" in first.output
    assert path.exists() and not rejected_names(env)
    with open(path, "ab") as writer:
        writer.write(data[cut:])
    second = env.cli("run")
    assert second.code == 0, second.output
    assert (second.counts()["files"], second.counts()["inserted"]) == (1, 3), second.output
    assert read_json(env.processed / "777.json") == json.loads(data)
    assert not rejected_names(env)


@pytest.mark.slow
def test_a_large_export_being_written_is_left_before_any_record_is_applied(env: Env) -> None:
    data = export(range(1, 30_001))
    env.inbound.mkdir(parents=True)
    path = env.inbound / "export.json"
    path.write_bytes(data[: len(data) * 3 // 4])  # over 4 MiB so far: decoded in parts
    first = env.cli("run", INBOUND_SETTLE_SECONDS="60")
    assert first.code == 0, first.output
    assert (first.counts()["files"], first.counts()["inserted"]) == (0, 0), first.output
    assert path.exists() and not rejected_names(env)
    with open(path, "ab") as writer:
        writer.write(data[len(data) * 3 // 4 :])
    # Complete now, but just written: a large file is streamed (its records applied before its
    # end is read), so it waits until left alone for the settle time (a part-written export may
    # end on a whole record and look complete).
    second = env.cli("run", INBOUND_SETTLE_SECONDS="60")
    assert (second.counts()["files"], second.counts()["inserted"]) == (0, 0), second.output
    assert "large file" in second.output
    done = time.time() - 120  # its writer finished two minutes ago
    os.utime(path, (done, done))
    third = env.cli("run", INBOUND_SETTLE_SECONDS="60")
    assert (third.counts()["files"], third.counts()["inserted"]) == (1, 30_000), third.output


def test_a_file_that_stays_broken_is_rejected_once_the_settle_time_has_passed(env: Env) -> None:
    env.inbound.mkdir(parents=True)
    broken = env.inbound / "broken.json"
    broken.write_text('{"orderNo": 1,')
    first = env.cli("run", INBOUND_SETTLE_SECONDS="30")
    assert first.counts()["rejected"] == 0 and broken.exists(), first.output
    wait_for = time.monotonic() + 10
    while time.time() - broken.stat().st_mtime < 0.5:  # unchanged for the settle time
        assert time.monotonic() < wait_for
        time.sleep(0.05)
    second = env.cli("run", INBOUND_SETTLE_SECONDS="0.5")
    assert second.counts()["rejected"] == 1, second.output
    reason = read_json(env.rejected / "broken.json.error.json")
    assert "not valid JSON" in reason["problems"][0]["reason"]


def test_watch_waits_for_a_writer_writing_the_final_name_in_pieces_without_spinning(
    env: Env, watch: list[Watch]
) -> None:
    """An SFTP-like writer creates ``777.json`` and writes it in pieces while other files flow
    in (watch then looks at the folder every few milliseconds): the partial file is left, not
    looked at again until it changes, and taken once whole."""
    env.inbound.mkdir(parents=True)
    watch.append(Watch(env, WATCH_INTERVAL="3600", INBOUND_SETTLE_SECONDS="60"))
    w = watch[0]
    wait_until(env.processed.exists, w.proc, 30)
    data = export(range(1, 4))
    with open(env.inbound / "777.json", "wb") as writer:
        writer.write(data[: len(data) // 2])
        writer.flush()
        wait_until(lambda: bool(w.lines("inbound.file_left")), w.proc, 20)
        # The writer pauses (under its settle time) while a steady flow of files arrives.
        for number in range(100, 140):
            tmp = env.inbound / f".{number}.json.tmp"
            tmp.write_bytes(orjson.dumps(client_record(number)))
            os.rename(tmp, env.inbound / f"{number}.json")
            time.sleep(0.02)
        wait_until((env.processed / "139.json").exists, w.proc, 30)
        writer.write(data[len(data) // 2 :])
    wait_until((env.processed / "777.json").exists, w.proc, 30)
    assert w.stop() == 0
    assert not rejected_names(env)
    assert not (env.processed / "777~1.json").exists()
    looks = [line for line in w.lines("inbound.file_left") if line["file"] == "777.json"]
    assert 1 <= len(looks) <= 3, looks
    assert env.collection.count_documents({"number": {"$in": [1, 2, 3]}}) == 3


def write_in_pieces_by_name(path: Path, data: bytes, pieces: int, how: str) -> None:
    """A writer that reopens the file by name for every piece: appending (``>>``, an SFTP upload
    resumed) or rewriting all it has so far in place (truncate, write)."""
    step = max(1, len(data) // pieces)
    path.write_bytes(b"")
    for end in range(step, len(data) + step, step):
        if how == "append":
            with open(path, "ab") as writer:
                writer.write(data[end - step : end])
        else:
            path.write_bytes(data[:end])
        time.sleep(0.002)


@pytest.mark.parametrize("how", ["append", "rewrite"])
def test_writers_reopening_the_file_by_name_under_watch_are_never_split(
    env: Env, watch: list[Watch], how: str
) -> None:
    """Eight writers write their exports under the final name, reopening it by name for each of
    200 pieces, while watch looks every few milliseconds: a part-written file is never moved
    while its writer may still come back to its name, so each is taken once, whole (hostile
    finding: a file taken while part-written and reopened by name meanwhile ended as two
    rejected fragments, ``w1.json`` and ``w1~1.json``)."""
    env.inbound.mkdir(parents=True)
    watch.append(Watch(env, WATCH_INTERVAL="3600", INBOUND_SETTLE_SECONDS="30"))
    w = watch[0]
    wait_until(env.processed.exists, w.proc, 30)
    writers = [
        threading.Thread(
            target=write_in_pieces_by_name,
            args=(env.inbound / f"w{k}.json", export(range(k * 100, k * 100 + 50)), 200, how),
        )
        for k in range(1, 9)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    names = [f"w{k}.json" for k in range(1, 9)]
    wait_until(lambda: all((env.processed / n).exists() for n in names), w.proc, 60)
    assert w.stop() == 0
    assert sorted(os.listdir(env.processed)) == sorted(names)
    assert not rejected_names(env)
    assert env.collection.count_documents({}) == 400


@pytest.fixture(params=["same file system", "processed on another file system"])
def processed_dir(request: pytest.FixtureRequest, env: Env) -> Iterator[Path]:
    if request.param == "same file system":
        yield env.processed
        return
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(env.root).st_dev:
        pytest.skip("no other file system at /dev/shm")
    with folder_in(SHM, "tracos-processed-") as folder:
        yield folder


@pytest.mark.slow
def test_a_file_written_to_while_in_hand_goes_back_and_is_taken_again_whole(
    env: Env, processed_dir: Path
) -> None:
    """A slow writer still holds the file open (an NFS writer, an upload) and writes more after
    the run took it: the file is not archived with bytes its records never saw, and across file
    systems its source is not removed with the writer's last bytes."""
    env.inbound.mkdir(parents=True)
    env.extra["DATA_PROCESSED_DIR"] = str(processed_dir)
    path = env.inbound / "export.json"
    data = export(range(1, 25_001))
    path.write_bytes(data)  # large: decoded in parts, in hand for a while
    aged(path)
    with open(path, "ab") as writer:
        proc = env.popen("run", BATCH_SIZE="500")
        wait_until(lambda: any(env.inbound.glob(".claims/*/export.json")), proc, 60)
        writer.write(b"\n")  # still valid JSON: only the change tells
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "inbound.file_changed_in_hand" in out + err
    assert path.exists() and not (processed_dir / "export.json").exists()
    again = env.cli("run", BATCH_SIZE="5000")
    assert again.code == 0, again.output
    assert again.counts()["files"] == 1 and again.counts()["rejected"] == 0, again.output
    assert (processed_dir / "export.json").read_bytes() == data + b"\n"
    assert env.collection.count_documents({}) == 25_000


# 2. Files dated ahead of this host are taken.


def test_a_file_dated_ahead_of_this_host_is_counted_taken_and_said_once(env: Env) -> None:
    env.inbound.mkdir(parents=True)
    (env.inbound / "1.json").write_bytes(orjson.dumps(client_record(1)))
    future = env.inbound / "2099.json"
    future.write_bytes(orjson.dumps(client_record(2)))
    year_2099 = 4_070_908_800.0
    os.utime(future, (year_2099, year_2099))
    # A minimum age keeps the fresh file back; it cannot be judged for one dated ahead.
    young = {"INBOUND_MIN_AGE_SECONDS": "3600"}
    check = env.cli("check", **young)
    assert "1 waiting (1 dated ahead of this host's clock)" in check.output, check.output
    result = env.cli("run", **young)
    assert result.code == 0, result.output
    assert result.counts()["files"] == 1, result.output
    assert (env.processed / "2099.json").exists() and (env.inbound / "1.json").exists()
    said = [line for line in result.output.splitlines() if "inbound.file_dated_ahead" in line]
    assert len(said) == 1 and "2099.json" in said[0] and "ahead" in said[0], said
    assert env.cli("run").counts()["files"] == 1  # the fresh one, with no minimum age


def test_a_broken_file_dated_ahead_is_left_once_then_rejected_if_unchanged(env: Env) -> None:
    """Its date cannot say whether its writer is done: it is rejected only once seen unchanged
    for the settle time (a note kept between runs)."""
    env.inbound.mkdir(parents=True)
    broken = env.inbound / "ahead.json"
    broken.write_text("[{")
    os.utime(broken, (time.time() + 86_400, time.time() + 86_400))
    settle = {"INBOUND_SETTLE_SECONDS": "0.3"}
    first = env.cli("run", **settle)
    assert first.counts()["rejected"] == 0 and broken.exists(), first.output
    time.sleep(0.3)  # the settle time itself is what is tested
    second = env.cli("run", **settle)
    assert second.counts()["rejected"] == 1, second.output
    assert (env.rejected / "ahead.json.error.json").exists()
    assert not list(env.inbound.glob(".claims/settling-*")), "the note goes with the file"


# 3. Bounded memory per file.


def peak_rss_mb(env: Env, *args: str, **overrides: str) -> tuple[float, str]:
    """Peak resident memory of one CLI process (its own ``getrusage``, measured by a parent
    that runs nothing else), and its output."""
    parent = (
        "import resource, subprocess, sys\n"
        "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(proc.stdout + proc.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(proc.returncode)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", parent, sys.executable, "-m", "tracos_sync", *args],
        cwd=env.root,
        env=env.environ(**overrides),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(proc.stdout.strip()) / 1024, proc.stderr


@pytest.mark.slow
def test_a_large_export_is_decoded_in_bounded_memory(env: Env) -> None:
    env.inbound.mkdir(parents=True)
    (env.inbound / "small.json").write_bytes(export(range(1, 2)))
    baseline, _ = peak_rss_mb(env, "inbound", "--dry-run")
    big = env.inbound / "big.json"
    big.write_bytes(export(range(1, 60_001)))  # about 14 MB, in batches of 1000
    aged(big)  # a large file is taken once its writer has left it alone for the settle time
    peak, output = peak_rss_mb(env, "inbound", "--dry-run")
    assert "files=2" in output, output
    # Measured: 3 MB more than for a small file; read whole, 57 MB more.
    assert peak - baseline < 25, f"{peak:.0f} MB against {baseline:.0f} MB for a small file"
    result = env.cli("run")
    assert result.code == 0, result.output
    assert (result.counts()["files"], result.counts()["inserted"]) == (2, 60_000)
    assert (env.processed / "big.json").exists()


def test_a_large_file_is_rejected_with_the_problems_of_every_part(env: Env) -> None:
    env.inbound.mkdir(parents=True)
    records = [client_record(n) for n in range(1, 30_001)]
    records[10]["orderNo"] = 0  # in the first part
    records[29_000]["orderNo"] = -1  # in the last
    (env.inbound / "big.json").write_bytes(orjson.dumps(records))
    aged(env.inbound / "big.json")
    result = env.cli("run", BATCH_SIZE="1000")
    assert result.code == 0, result.output
    assert (result.counts()["files"], result.counts()["rejected"]) == (1, 2), result.output
    assert result.counts()["inserted"] == 29_998
    reason = read_json(env.rejected / "big.json.error.json")
    assert [p["record"] for p in reason["problems"]] == [10, 29_000]


# 4. Crash-loop containment.


def kill_while_in_hand(env: Env, name: str) -> str:
    """Start ``run`` and SIGKILL it while it holds ``name`` (in its own claim folder, not in
    the one a killed run before it left); its output."""
    before = set(env.inbound.glob(".claims/*"))
    proc = env.popen("run", BATCH_SIZE="200")

    def in_hand() -> bool:
        return any(p.parent not in before for p in env.inbound.glob(f".claims/*/{name}"))

    wait_until(in_hand, proc, 60)
    proc.kill()
    out, err = proc.communicate(timeout=30)
    return out + err


def test_a_file_in_hand_at_two_consecutive_crashes_is_quarantined_and_the_rest_goes_on(
    env: Env,
) -> None:
    env.inbound.mkdir(parents=True)
    poison = env.inbound / "poison.json"
    poison.write_bytes(export(range(1000, 26_000)))  # large: in hand for many batches
    aged(poison)  # the oldest: taken first
    for number in (1, 2, 3):
        (env.inbound / f"{number}.json").write_bytes(orjson.dumps(client_record(number)))
    kill_while_in_hand(env, "poison.json")
    kill_while_in_hand(env, "poison.json")
    result = env.cli("run")
    assert result.code == 0, result.output
    assert "poison.json" in result.output and POISON in result.output
    reason = read_json(env.rejected / "poison.json.error.json")
    assert reason["problems"] == [{"record": None, "path": "$", "reason": POISON}]
    assert sorted(p.name for p in env.processed.iterdir()) == ["1.json", "2.json", "3.json"]
    assert not list(env.inbound.glob("*.json"))
    assert not list(env.inbound.glob(".claims/suspect-*")), "forgotten"


def test_a_file_in_hand_at_one_crash_is_taken_again_and_forgotten(env: Env) -> None:
    env.inbound.mkdir(parents=True)
    big = env.inbound / "big.json"
    big.write_bytes(export(range(1, 25_001)))
    aged(big)
    kill_while_in_hand(env, "big.json")
    result = env.cli("run")
    assert result.code == 0, result.output
    assert (env.processed / "big.json").exists() and not rejected_names(env)
    assert not list(env.inbound.glob(".claims/suspect-*")), "a normal archive forgets it"


def freeze_when(
    env: Env, proc: subprocess.Popen[str], before: set[Path], holds: Callable[[list[str]], bool]
) -> list[str]:
    """SIGSTOP ``proc`` once what it holds (its own claim folder, not one in ``before``) passes
    ``holds``, checked again while it is stopped (it may have archived meanwhile: then it goes on
    and is watched again); what it holds."""
    start = time.monotonic()
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < 60, "not within the time allowed"
        if holds(in_hand(env, before)):
            proc.send_signal(signal.SIGSTOP)
            held = in_hand(env, before)
            if holds(held):
                return held
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.002)


def in_hand(env: Env, before: set[Path]) -> list[str]:
    return sorted(
        p.name
        for folder in env.inbound.glob(".claims/*")
        if folder.is_dir() and folder not in before
        for p in folder.glob("*.json")
    )


@pytest.mark.parametrize("next_after_it", ["the other suspect", "an innocent file"])
def test_two_files_in_hand_at_a_crash_then_a_crash_with_the_first_in_hand_quarantines_only_it(
    env: Env, next_after_it: str
) -> None:
    """The hostile tester's crash loop (BATCH_SIZE=1): the batch in hand and the one read ahead
    are both in hand at a crash, so both are suspects. The next run holds the first suspect
    alone: nothing is read ahead beside it, neither the other suspect nor an innocent file
    next in line, so a crash then quarantines it only; the rest is applied and archived, and
    the summary counts the quarantined file."""
    env.inbound.mkdir(parents=True)
    first = env.inbound / "a.json"
    first.write_bytes(export(range(1000, 1400)))  # 400 records: 400 writes at BATCH_SIZE=1
    aged(first, 900)  # the oldest: taken first
    (env.inbound / "b.json").write_bytes(orjson.dumps(client_record(1)))
    aged(env.inbound / "b.json", 800)  # the next
    for number in range(2, 22):
        (env.inbound / f"c{number:02}.json").write_bytes(orjson.dumps(client_record(number)))
    # Crash 1: a.json being applied, b.json read ahead.
    before = set(env.inbound.glob(".claims/*"))
    proc = env.popen("inbound", BATCH_SIZE="1")
    held = freeze_when(env, proc, before, lambda held: len(held) >= 2)
    proc.kill()
    proc.communicate(timeout=30)
    assert held == ["a.json", "b.json"]
    if next_after_it == "an innocent file":
        aged(env.inbound / "c02.json", 850)  # between a.json and b.json
    applied = env.collection.count_documents({})
    # Crash 2: a.json well on its way (30 more of its records written since), in hand alone.
    before = set(env.inbound.glob(".claims/*"))
    proc = env.popen("inbound", BATCH_SIZE="1")
    held = freeze_when(
        env,
        proc,
        before,
        lambda held: "a.json" in held and env.collection.count_documents({}) >= applied + 30,
    )
    proc.kill()
    proc.communicate(timeout=30)
    assert held == ["a.json"], "nothing in hand beside a suspect"
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert rejected_names(env) == ["a.json", "a.json.error.json"]
    assert read_json(env.rejected / "a.json.error.json")["problems"][0]["reason"] == POISON
    processed = sorted(p.name for p in env.processed.iterdir())
    assert processed == ["b.json"] + [f"c{n:02}.json" for n in range(2, 22)]
    counts = result.counts()
    assert (counts["files"], counts["rejected"], counts["inserted"]) == (22, 1, 21), result.output


# 5. What a vanished folder is said to be.


def test_a_deleted_inbound_folder_is_said_to_be_deleted(env: Env, watch: list[Watch]) -> None:
    env.inbound.mkdir(parents=True)
    watch.append(Watch(env, WATCH_INTERVAL="0.2", CLAIM_STALE_SECONDS="1"))
    w = watch[0]
    wait_until(env.processed.exists, w.proc, 30)
    shutil.rmtree(env.inbound)
    wait_until(lambda: bool(w.lines("inbound.claim_folder_vanished")), w.proc, 30)
    line = w.lines("inbound.claim_folder_vanished")[0]
    assert "inbound folder" in line["reason"] and "deleted" in line["reason"], line
    assert "stale" not in line["reason"]
