"""Archiving that cannot strand, duplicate or overwrite a file: another file system, names at the
length limit, reason files beside client files named like them, a folder or a file that refuses
the move, a kill at any instant (also in a fresh pid namespace, where every instance is pid 1)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.builders import client_record, read_json, write_json
from tests.conftest import Env
from tests.faults.test_outbound_faults import tiny_disk
from tracos_sync.connectors.client_erp.files import FolderSettings, FolderSource
from tracos_sync.connectors.client_erp.files.archive import SIDECAR_SUFFIX, rejected_files
from tracos_sync.connectors.client_erp.files.temps import TEMP_STALE_SECONDS
from tracos_sync.mapping import builtin_mapping

SHM = Path("/dev/shm")
NAMESPACE = ("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")
HOST = socket.gethostname().replace("-", "_")


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: refused to everyone, root included (the tests may run as root)."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr here")
    made = subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True)
    if made.returncode != 0:
        pytest.skip("this file system has no immutable attribute")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def claimed_files(env: Env) -> list[Path]:
    """Files in hand in any claim folder (the notes beside the folders are not in hand)."""
    return [p for p in (env.inbound / ".claims").glob("*/*") if p.is_file()]


def assert_every_rejected_file_has_its_reason(rejected: Path) -> list[str]:
    files, _ = rejected_files(rejected)
    for name in files:
        reason = read_json(rejected / (name + SIDECAR_SUFFIX))
        assert reason["archivedAs"] == name
    return files


def test_processed_on_another_file_system(env: Env, tmp_path: Path) -> None:
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    processed = SHM / f"tracos-processed-{os.getpid()}-{tmp_path.name}"
    try:
        for n in range(1, 6):
            write_json(env.inbound / f"{n}.json", client_record(n))
        result = env.cli("inbound", DATA_PROCESSED_DIR=str(processed))
        assert result.code == 0, result.output
        assert sorted(p.name for p in processed.iterdir()) == [f"{n}.json" for n in range(1, 6)]
        assert not claimed_files(env) and not list(env.inbound.glob("*.json"))
        check = env.cli("check", DATA_PROCESSED_DIR=str(processed))
        assert "ok    archiving to processed/" in check.stdout, check.output
        assert "another file system" in check.stdout
    finally:
        shutil.rmtree(processed, ignore_errors=True)


def test_unwritable_processed_folder_fails_check_and_stops_the_run(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    env.processed.mkdir(parents=True)
    with immutable(env.processed):
        check = env.cli("check")
        assert check.code == 1
        assert "FAIL  archiving to processed/" in check.stdout, check.output
        refused = env.cli("inbound")
        assert refused.code == 1, refused.output
        assert (env.inbound / "1.json").exists(), "given back for the next run"
        assert not claimed_files(env)
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert [p.name for p in env.processed.iterdir()] == ["1.json"]


def test_names_at_the_length_limit_are_archived(env: Env) -> None:
    long_name = "n" * 250 + ".json"
    write_json(env.inbound / long_name, client_record(1, summary="first"))
    assert env.cli("inbound").code == 0
    later = client_record(1, summary="second", lastUpdateDate="2024-06-01T00:00:00Z")
    write_json(env.inbound / long_name, later)
    bad_name = "b" * 245 + ".json"
    write_json(env.inbound / bad_name, client_record(2, orderNo="two"))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert len(list(env.processed.iterdir())) == 2
    assert env.collection.find_one({"number": 1})["title"] == "second"  # type: ignore[index]
    rejected = assert_every_rejected_file_has_its_reason(env.rejected)
    assert len(rejected) == 1 and rejected[0].endswith(".json")
    assert not list(env.inbound.glob("*.json")) and not claimed_files(env)


def test_a_reason_never_overwrites_a_client_file_named_like_one(env: Env) -> None:
    write_json(env.inbound / "a.json.error.json", client_record(1, orderNo="bad"))
    assert env.cli("inbound").code == 0
    write_json(env.inbound / "a.json", client_record(2, orderNo="bad too"))
    assert env.cli("inbound").code == 0
    names = sorted(p.name for p in env.rejected.iterdir())
    assert names == [
        "a.json",
        "a.json.error-client.json",
        "a.json.error-client.json.error.json",
        "a.json.error.json",
    ]
    assert read_json(env.rejected / "a.json.error.json")["file"] == "a.json"
    assert read_json(env.rejected / "a.json.error-client.json")["orderNo"] == "bad"
    assert "2 quarantined in rejected/" in env.cli("check").stdout
    replay = env.cli("replay")
    assert replay.code == 0, replay.output
    assert sorted(p.name for p in env.inbound.glob("*.json")) == ["a.json", "a.json.error.json"]
    assert not list(env.rejected.iterdir())


def test_a_crash_between_reason_and_move_leaves_no_file_without_reason(env: Env) -> None:
    # Killed after writing x.json's reason, before moving x.json beside it; and killed after
    # linking y.json into rejected/ (its reason written first), before unlinking its claim.
    dead = env.inbound / ".claims" / f"{HOST}-1-deadbeef"
    dead.mkdir(parents=True)
    env.rejected.mkdir(parents=True)
    write_json(dead / "x.json", client_record(1, orderNo="bad"))
    write_json(env.rejected / "x.json.error.json", {"file": "x.json", "archivedAs": "x.json"})
    write_json(dead / "y.json", client_record(2, orderNo="bad"))
    write_json(env.rejected / "y.json.error.json", {"file": "y.json", "archivedAs": "y.json"})
    os.link(dead / "y.json", env.rejected / "y.json")
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert assert_every_rejected_file_has_its_reason(env.rejected) == ["x~1.json", "y.json"]
    assert "1 reasons without their file" in env.cli("check").stdout
    assert not claimed_files(env)


async def test_one_file_that_cannot_be_archived_costs_only_itself(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    for n in (1, 2, 3):
        write_json(folder / f"{n}.json", client_record(n))
    src = FolderSource(FolderSettings(data_inbound_dir=folder), builtin_mapping())
    await src.prepare()
    units = [unit async for batch in src.batches(10) for unit in batch]
    stuck = next(u.handle for u in units if u.name == "2.json").path  # type: ignore[attr-defined]
    assert isinstance(stuck, Path)
    with immutable(stuck), capture_logs() as logs:
        await src.complete(units)  # no exception: the run goes on
    assert sorted(p.name for p in (folder / "processed").iterdir()) == ["1.json", "3.json"]
    assert [e["file"] for e in logs if e["event"] == "inbound.archive_failed"] == ["2.json"]
    await src.close()
    rerun = FolderSource(FolderSettings(data_inbound_dir=folder), builtin_mapping())
    await rerun.prepare()
    assert (folder / "2.json").exists(), "recovered for the next run once its instance ended"


def test_a_dead_claim_with_a_live_pid_is_recovered(env: Env) -> None:
    dead = env.inbound / ".claims" / f"{HOST}-1-deadbeef"  # pid 1 is always alive
    dead.mkdir(parents=True)
    write_json(dead / "5.json", client_record(5))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert [p.name for p in env.processed.iterdir()] == ["5.json"]
    assert not dead.exists()


def unshared(env: Env, *args: str, **overrides: str) -> subprocess.Popen[str]:
    """The CLI as pid 1 of a fresh pid namespace, as in a container (killed with it)."""
    return subprocess.Popen(
        [*NAMESPACE, sys.executable, "-m", "tracos_sync", *args],
        cwd=env.root,
        env=env.environ(**overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_killed_as_pid_1_then_three_instances_recover_at_once(env: Env) -> None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root for a pid namespace")
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip("pid namespaces are not available here")
    total = 2000
    for n in range(1, total + 1):
        write_json(env.inbound / f"{n}.json", client_record(n))
    victim = unshared(env, "inbound", BATCH_SIZE="5")
    deadline = time.monotonic() + 120
    while not env.processed.exists() or len(os.listdir(env.processed)) < 200:
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)  # mid-batch: files claimed (read ahead, being archived)
    reruns = [unshared(env, "inbound", BATCH_SIZE="50") for _ in range(3)]
    for rerun in reruns:
        output, _ = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, output
    archived = sorted(p.name for p in env.processed.iterdir())
    assert archived == sorted(f"{n}.json" for n in range(1, total + 1)), "each exactly once"
    numbers = [d["number"] for d in env.collection.find({}, {"number": 1})]
    assert sorted(numbers) == list(range(1, total + 1))
    assert not list(env.inbound.glob("*.json")) and not claimed_files(env)
    # Nothing left but the count of crashes recovered: no claim folder, no suspect note.
    left = [p.name for p in (env.inbound / ".claims").iterdir()]
    assert all(name.startswith("crashes-") for name in left), left


def test_a_dead_writers_temp_files_are_cleaned_at_start(env: Env) -> None:
    env.outbound.mkdir(parents=True)
    old = time.time() - 2 * TEMP_STALE_SECONDS
    dead = [env.outbound / f".{n}.json.a1b2c3d{n}.tmp" for n in range(5)]
    for path in dead:
        path.write_text("{")
        os.utime(path, (old, old))
    young = env.outbound / ".9.json.z9y8x7w6.tmp"  # maybe a live writer on another host
    young.write_text("{")
    result = env.cli("outbound")
    assert result.code == 0, result.output
    assert not any(p.exists() for p in dead)
    assert young.exists()


def test_watch_recreates_a_claim_folder_removed_by_another_host(env: Env) -> None:
    watch = env.popen("watch", WATCH_INTERVAL="0.2")
    try:
        claims = env.inbound / ".claims"
        deadline = time.monotonic() + 60
        while not claims.is_dir() or not list(claims.iterdir()):
            assert watch.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        for folder in claims.iterdir():
            folder.rmdir()  # another host's run took it for abandoned
        write_json(env.inbound / "1.json", client_record(1))
        while not (env.processed / "1.json").exists():
            assert watch.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, out + err
    assert "inbound.claim_folder_vanished" in out + err


def test_a_full_processed_folder_on_another_disk_stops_the_run_and_loses_nothing(
    env: Env,
) -> None:
    for n in (1, 2, 3):
        write_json(env.inbound / f"{n}.json", client_record(n))
    with tiny_disk(env.root / "small", "16k") as processed:
        with contextlib.suppress(OSError), (processed / "filler").open("wb") as filler:
            while True:
                filler.write(b"x" * 4096)
                filler.flush()
        result = env.cli("inbound", DATA_PROCESSED_DIR=str(processed))
        assert result.code == 1, result.output
        assert "No space left on device" in result.output
        assert sorted(p.name for p in env.inbound.glob("*.json")) == ["1.json", "2.json", "3.json"]
        assert [p.name for p in processed.iterdir()] == ["filler"], "no partial copy left"
        assert not claimed_files(env)
