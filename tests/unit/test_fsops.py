"""File primitives: moves that never overwrite and never copy twice (also when a kill left one
half done, when the file system has no renameat2, and across file systems), names shortened to
fit, temp files of dead writers cleaned and live writers' kept."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracos_sync.connectors.client_erp.files import durable, folder_lock, fsnames, moves, temps

SHM = Path("/dev/shm")


@pytest.fixture(params=["renameat2", "link+unlink"])
def move_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each move test runs with renameat2 and as on a file system without it."""
    if request.param == "link+unlink":
        monkeypatch.setattr(moves, "_renameat2", None)
    else:
        assert moves._renameat2 is not None, "glibc >= 2.28 has renameat2"
    return str(request.param)


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than ``tmp_path`` (tmpfs), or skip if there is none."""
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system here")
    folder = SHM / f"tracos-test-{os.getpid()}-{tmp_path.name}"
    folder.mkdir()
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "claim", tmp_path / "processed"
    src.mkdir()
    dst.mkdir()
    return src, dst


def test_move_never_overwrites(tmp_path: Path, move_mode: str) -> None:
    src, dst = dirs(tmp_path)
    (dst / "1.json").write_text("old")
    (src / "1.json").write_text("new")
    moved = moves.move_no_clobber(src / "1.json", dst, "1.json")
    assert moved.name == "1~1.json"
    assert (dst / "1.json").read_text() == "old" and moved.read_text() == "new"
    assert not (src / "1.json").exists()


def test_move_half_done_by_a_kill_is_finished_not_copied_again(
    tmp_path: Path, move_mode: str
) -> None:
    src, dst = dirs(tmp_path)
    (src / "1.json").write_text("x")
    os.link(src / "1.json", dst / "1.json")  # killed between the link and the unlink
    moved = moves.move_no_clobber(src / "1.json", dst, "1.json")
    assert moved == dst / "1.json"
    assert sorted(p.name for p in dst.iterdir()) == ["1.json"]
    assert not (src / "1.json").exists()


def test_two_recoverers_finishing_the_same_move(tmp_path: Path, move_mode: str) -> None:
    src, dst = dirs(tmp_path)
    (src / "1.json").write_text("x")
    assert moves.place_no_clobber(src / "1.json", dst / "1.json")
    assert moves.move_no_clobber(dst / "1.json", dst, "1.json") == dst / "1.json"


def test_move_across_file_systems(tmp_path: Path, other_fs: Path) -> None:
    src, _ = dirs(tmp_path)
    (src / "1.json").write_text("one")
    (other_fs / "2.json").write_text("taken")
    (src / "2.json").write_text("two")
    os.utime(src / "1.json", ns=(1_000_000_000, 1_000_000_000))
    assert moves.move_no_clobber(src / "1.json", other_fs, "1.json") == other_fs / "1.json"
    assert moves.move_no_clobber(src / "2.json", other_fs, "2.json") == other_fs / "2~1.json"
    assert (other_fs / "1.json").read_text() == "one"
    assert (other_fs / "1.json").stat().st_mtime_ns == 1_000_000_000, "the copy keeps its date"
    assert (other_fs / "2.json").read_text() == "taken"
    assert not list(src.iterdir())
    assert sorted(p.name for p in other_fs.iterdir()) == ["1.json", "2.json", "2~1.json"]


def test_copy_across_file_systems_finished_by_a_retry(tmp_path: Path, other_fs: Path) -> None:
    src, _ = dirs(tmp_path)
    (src / "1.json").write_text("one")
    # A kill after the copy was renamed into place, before the source was removed:
    (other_fs / "1.json").write_bytes((src / "1.json").read_bytes())
    stamp = (src / "1.json").stat().st_mtime_ns
    os.utime(other_fs / "1.json", ns=(stamp, stamp))
    assert moves.move_no_clobber(src / "1.json", other_fs, "1.json") == other_fs / "1.json"
    assert sorted(p.name for p in other_fs.iterdir()) == ["1.json"]
    assert not (src / "1.json").exists()


def test_long_names_are_shortened_deterministically(tmp_path: Path) -> None:
    src, dst = dirs(tmp_path)
    name = "n" * 250 + ".json"
    (dst / name).write_text("first")
    (src / name).write_text("second")
    moved = moves.move_no_clobber(src / name, dst, name)
    assert len(os.fsencode(moved.name)) <= 255 and moved.name.endswith(".json")
    assert moved.name == fsnames.fit_name("n" * 250 + "~1.json", 255), "deterministic"
    reserve = len(".error.json")
    again = fsnames.candidate_names(name, dst, reserve)
    assert all(len(next(again)) + reserve <= 255 for _ in range(3))


def test_temp_and_exclusive_files_with_names_at_the_limit(tmp_path: Path) -> None:
    name = "r" * 239 + ".json.error.json"
    durable.write_atomically(tmp_path / ("w" * 250 + ".json"), b"{}")
    durable.create_exclusively(tmp_path / name, b"reason")
    with pytest.raises(FileExistsError):
        durable.create_exclusively(tmp_path / name, b"another")
    assert (tmp_path / name).read_bytes() == b"reason"
    assert [len(p.name) for p in tmp_path.iterdir()] == [255, 255], "no temp file left"


def test_stale_temp_files_are_removed_but_never_a_live_writers(tmp_path: Path) -> None:
    old = time.time() - 2 * temps.TEMP_STALE_SECONDS
    dead = tmp_path / ".7.json.abcd1234.tmp"
    live = tmp_path / ".8.json.efgh5678.tmp"
    young = tmp_path / ".9.json.ijkl9012.tmp"
    client = tmp_path / ".notes.tmp"
    for path in (dead, live, young, client):
        path.write_text("partial")
    for path in (dead, live, client):
        os.utime(path, (old, old))
    with live.open("rb") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)  # a writer alive on this host holds its temp file
        assert temps.remove_stale_temps(tmp_path) == 1
    assert not dead.exists()
    assert live.exists() and young.exists() and client.exists()


def test_write_atomically_locks_its_temp_file_while_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_replace = os.replace

    def replace_spy(src: str, dst: Path) -> None:
        os.utime(src, (0, 0))  # as old as can be: only the lock protects it now
        seen.append(temps.remove_stale_temps(tmp_path))
        real_replace(src, dst)

    monkeypatch.setattr(durable.os, "replace", replace_spy)
    durable.write_atomically(tmp_path / "5.json", b"{}")
    assert seen == [0]
    assert (tmp_path / "5.json").read_bytes() == b"{}"


@pytest.fixture
def held_folder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A folder whose flock a child process holds (until the test ends), and its pid."""
    import subprocess
    import sys

    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    try:
        yield tmp_path, holder.pid
    finally:
        holder.kill()
        holder.wait(10)


def test_a_held_folder_lock_is_given_up_at_its_deadline_naming_the_holder(
    held_folder: tuple[Path, int],
) -> None:
    folder, pid = held_folder
    started = time.monotonic()
    with (
        pytest.raises(folder_lock.LockHeld) as raised,
        folder_lock.folder_lock(folder, timeout=0.3),
    ):
        pytest.fail("the lock was had")
    took = time.monotonic() - started
    assert 0.3 <= took < 2
    assert raised.value.holder.startswith(f"pid {pid} (python")


def test_an_abandoned_wait_ends_at_once(held_folder: tuple[Path, int]) -> None:
    import threading

    folder, _ = held_folder
    abandon = threading.Event()
    threading.Timer(0.2, abandon.set).start()
    started = time.monotonic()
    with pytest.raises(folder_lock.LockHeld), folder_lock.folder_lock(folder, 60, abandon):
        pytest.fail("the lock was had")
    assert time.monotonic() - started < 1


def test_nobody_holds_a_free_folder(tmp_path: Path) -> None:
    assert folder_lock.lock_holder(tmp_path) == "another process"
    with folder_lock.folder_lock(tmp_path, timeout=0.1):
        pass  # had at once


def test_once_one_wait_runs_out_every_other_gives_up_at_once(
    held_folder: tuple[Path, int],
) -> None:
    # 16 files, 4 writer threads: one deadline for all of them, not one per wave of 4 (2 s).
    from concurrent.futures import ThreadPoolExecutor
    from threading import Event

    folder, pid = held_folder
    given_up = Event()

    def write_one(_: int) -> folder_lock.LockHeld:
        with (
            pytest.raises(folder_lock.LockHeld) as raised,
            folder_lock.folder_lock(folder, 0.5, given_up=given_up),
        ):
            pytest.fail("the lock was had")
        return raised.value

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        refusals = list(pool.map(write_one, range(16)))
    took = time.monotonic() - started
    assert 0.5 <= took < 1.5, took
    assert given_up.is_set()
    assert max(r.waited for r in refusals) >= 0.5
    assert all(r.holder.startswith(f"pid {pid} (python") for r in refusals)
    started = time.monotonic()
    write_one(0)  # later, while it stays held: one try
    assert time.monotonic() - started < 0.2


def test_a_wait_given_up_on_is_tried_again_once_the_lock_is_had(tmp_path: Path) -> None:
    from threading import Event

    given_up = Event()
    given_up.set()  # an earlier wait ran out; the holder has let go since
    with folder_lock.folder_lock(tmp_path, 0.5, given_up=given_up):
        pass
    assert not given_up.is_set()


class _PausedOnce:
    """``time`` as seen by a process frozen for a minute during its first sleep."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
        if not self.offset:
            self.offset = 60.0


def test_a_pause_during_a_wait_counts_as_the_wait_not_as_the_pause(
    held_folder: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = held_folder
    monkeypatch.setattr(folder_lock, "time", _PausedOnce())
    started = time.monotonic()
    with (
        pytest.raises(folder_lock.LockHeld) as raised,
        folder_lock.folder_lock(folder, timeout=0.3),
    ):
        pytest.fail("the lock was had")
    assert time.monotonic() - started >= 0.25  # its deadline was waited, not skipped
    assert 0.3 <= raised.value.waited < 0.5


def test_a_lock_held_by_a_thread_of_this_process_is_said_to_be_so(tmp_path: Path) -> None:
    import threading

    had, done = threading.Event(), threading.Event()

    def sibling() -> None:
        with folder_lock.folder_lock(tmp_path, 5):
            had.set()
            done.wait(10)

    thread = threading.Thread(target=sibling)
    thread.start()
    try:
        assert had.wait(10)
        assert folder_lock.lock_holder(tmp_path) == folder_lock.OWN_WRITER
        with (
            pytest.raises(folder_lock.LockHeld) as raised,
            folder_lock.folder_lock(tmp_path, 0.2),
        ):
            pytest.fail("the lock was had")
        assert raised.value.holder == folder_lock.OWN_WRITER
        assert f"pid {os.getpid()}" not in str(raised.value)
    finally:
        done.set()
        thread.join(10)


def test_a_queue_of_our_own_threads_that_moves_is_waited_for_beyond_the_deadline(
    tmp_path: Path,
) -> None:
    # Our writer threads take turns; the lock is not fair, so one thread may wait behind its
    # siblings for longer than the deadline while the queue keeps moving. That is no one's
    # holding: it used to defer its file, blaming "another process". Here the siblings' turns
    # are stood for by the test, which holds the turn lock and counts a turn every 20 ms.
    import threading

    turns = folder_lock._turns(tmp_path)
    outcome: list[str] = []

    def waiter() -> None:
        try:
            with folder_lock.folder_lock(tmp_path, 0.2):
                outcome.append("had")
        except folder_lock.LockHeld:
            outcome.append("deferred")

    assert turns.lock.acquire(timeout=5)
    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        deadline = time.monotonic() + 0.8  # four deadlines of a queue that moves
        while time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.02)
            turns.taken += 1
        assert thread.is_alive(), outcome
    finally:
        turns.lock.release()
        thread.join(10)
    assert outcome == ["had"]
