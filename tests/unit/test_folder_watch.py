"""One watch of file events for every followed folder of a process: each folder's events wake its
own followers and no one else's, folders join and leave without costing the others their events,
a folder removed or unwatchable ends its own followers only, and the whole process holds one
inotify instance whatever the number of folders."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from watchfiles import Change

from tracos_sync.connectors.client_erp.files import folder_watch
from tracos_sync.connectors.client_erp.files.folder_watch import RESTART_GAP_SECONDS, FolderWatch

ENDED: list[str] = []  # how followers ended, for a failure's message


class Followed:
    """A folder followed in the background, as watch mode follows an inbound folder: its wakes
    counted (the first says it is watched), how it ended kept."""

    def __init__(self, watch: FolderWatch, folder: Path, min_age_seconds: float = 0) -> None:
        self.folder = folder
        self.wakes = 0
        self.error: Exception | None = None
        self.task = asyncio.create_task(self._follow(watch.ready_files(folder, min_age_seconds)))

    async def _follow(self, events: AsyncIterator[None]) -> None:
        try:
            async for _ in events:
                self.wakes += 1
        except Exception as exc:
            self.error = exc
            ENDED.append(f"{self.folder.name}: {exc!r}")

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(condition: Callable[[], bool], limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        # What ended meanwhile, if anything (no inotify instance left on this machine?).
        assert time.monotonic() < deadline, f"not within the time allowed; ended: {ENDED[-3:]}"
        await asyncio.sleep(0.005)


def drop(folder: Path, name: str) -> None:
    """A client file, written under a temp name and renamed in."""
    tmp = folder / f".{name}.tmp"
    tmp.write_text("{}")
    os.rename(tmp, folder / name)


def inotify_instances() -> int:
    """inotify instances this process holds (each a file descriptor)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue  # the descriptor listdir itself used
    return count


def folders(root: Path, count: int) -> list[Path]:
    made = [root / f"in{i}" for i in range(count)]
    for folder in made:
        folder.mkdir()
    return made


@pytest.fixture
def watch() -> FolderWatch:
    return FolderWatch()


async def test_a_file_in_each_of_200_folders_wakes_its_own_follower_and_no_other(
    tmp_path: Path, watch: FolderWatch
) -> None:
    before = inotify_instances()
    all_folders = folders(tmp_path, 200)
    followed = [Followed(watch, folder) for folder in all_folders]
    try:
        await until(lambda: all(f.wakes == 1 for f in followed))  # each watched
        assert inotify_instances() == before + 1, "one inotify instance for 200 folders"
        for n, one in enumerate(followed):
            drop(one.folder, f"{n}.json")
            await until(lambda one=one: one.wakes == 2)
        # The watch hands events over in order: a wake sent astray earlier is in by now.
        drop(all_folders[0], "last.json")
        await until(lambda: followed[0].wakes == 3)
        assert [f.wakes for f in followed[1:]] == [2] * 199
        assert watch.starts == 1
    finally:
        for one in followed:
            await one.close()
    await until(lambda: inotify_instances() == before)  # the last one gone, the watch ends


async def test_followers_leaving_and_joining_keep_the_others_events(
    tmp_path: Path, watch: FolderWatch
) -> None:
    a, b, c = folders(tmp_path, 3)
    first, second = Followed(watch, a), Followed(watch, b)
    opened = [first, second]
    try:
        await until(lambda: first.wakes == 1 and second.wakes == 1)
        await second.close()
        drop(a, "1.json")
        await until(lambda: first.wakes == 2)
        # A folder joining restarts the watch: what arrives meanwhile is lost, so every
        # follower of the new watch is woken once, its sweep then looks.
        third = Followed(watch, c)
        opened.append(third)
        await until(lambda: third.wakes == 1)
        assert watch.starts == 2
        await until(lambda: first.wakes == 3)
        drop(a, "2.json")
        drop(c, "3.json")
        await until(lambda: first.wakes == 4 and third.wakes == 2)
        again = Followed(watch, b)  # the one that left, back
        opened.append(again)
        await until(lambda: again.wakes == 1)
        drop(b, "4.json")
        await until(lambda: again.wakes == 2)
        assert first.error is None and third.error is None and again.error is None
    finally:
        for one in opened:
            await one.close()


async def test_a_follower_of_a_folder_already_watched_is_woken_without_a_restart(
    tmp_path: Path, watch: FolderWatch
) -> None:
    (a,) = folders(tmp_path, 1)
    first = Followed(watch, a)
    await until(lambda: first.wakes == 1)
    second = Followed(watch, a)
    try:
        await until(lambda: second.wakes == 1)
        drop(a, "1.json")
        await until(lambda: first.wakes == 2 and second.wakes == 2)
        assert watch.starts == 1
    finally:
        await first.close()
        await second.close()


async def test_a_folder_removed_ends_its_follower_only_and_is_watched_again_when_back(
    tmp_path: Path, watch: FolderWatch
) -> None:
    a, b = folders(tmp_path, 2)
    kept, removed = Followed(watch, a), Followed(watch, b)
    opened = [kept, removed]
    try:
        await until(lambda: kept.wakes == 1 and removed.wakes == 1)
        shutil.rmtree(b)
        await until(removed.task.done)
        assert isinstance(removed.error, FileNotFoundError)
        assert "was removed" in str(removed.error)
        drop(a, "1.json")
        await until(lambda: kept.wakes == 2)
        b.mkdir()  # made anew by a sweep; its integration follows it again
        back = Followed(watch, b)
        opened.append(back)
        await until(lambda: back.wakes == 1)
        drop(b, "2.json")
        await until(lambda: back.wakes == 2)
        assert kept.error is None
    finally:
        for one in opened:
            await one.close()


async def test_a_folder_that_cannot_be_watched_ends_only_its_follower_and_restarts_nothing(
    tmp_path: Path, watch: FolderWatch
) -> None:
    (a,) = folders(tmp_path, 1)
    kept = Followed(watch, a)
    try:
        await until(lambda: kept.wakes == 1)
        missing = Followed(watch, tmp_path / "missing")
        await until(missing.task.done)
        assert isinstance(missing.error, FileNotFoundError)
        assert missing.wakes == 0
        drop(a, "1.json")
        await until(lambda: kept.wakes == 2)
        assert watch.starts == 1
    finally:
        await kept.close()


async def test_a_folder_gone_just_before_a_restart_ends_its_follower_only(
    tmp_path: Path, watch: FolderWatch
) -> None:
    a, b, c = folders(tmp_path, 3)
    kept = Followed(watch, a)
    opened = [kept]
    try:
        await until(lambda: kept.wakes == 1)
        doomed, late = Followed(watch, b), Followed(watch, c)
        opened += [doomed, late]
        await asyncio.sleep(0)  # both joined: they wait for the restart (debounced)
        assert not doomed.task.done()
        shutil.rmtree(b)
        await until(lambda: late.wakes == 1 and doomed.task.done())
        assert isinstance(doomed.error, FileNotFoundError)
        assert "no such folder to watch" in str(doomed.error)
        drop(c, "1.json")
        await until(lambda: late.wakes == 2)
    finally:
        for one in opened:
            await one.close()


async def test_300_folders_joining_over_a_second_cost_a_few_restarts(
    tmp_path: Path, watch: FolderWatch
) -> None:
    all_folders = folders(tmp_path, 300)
    started = time.monotonic()
    followed = []
    for folder in all_folders:  # integrations starting one after another
        followed.append(Followed(watch, folder))
        await asyncio.sleep(0.004)
    joining = time.monotonic() - started
    try:
        await until(lambda: all(f.wakes >= 1 for f in followed))
        assert watch.starts <= joining / RESTART_GAP_SECONDS + 2
        drop(all_folders[-1], "1.json")
        woken = followed[-1].wakes
        await until(lambda: followed[-1].wakes > woken)
    finally:
        for one in followed:
            await one.close()


async def test_when_the_watch_itself_fails_every_follower_ends_with_its_error(
    tmp_path: Path, watch: FolderWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    tried = []

    def exhausted(*paths: str, **_: object) -> AsyncIterator[set[tuple[object, str]]]:
        tried.append(paths)
        raise RuntimeError("Error creating recommended watcher: Too many open files")

    monkeypatch.setattr(folder_watch, "awatch", exhausted)
    followed = [Followed(watch, folder) for folder in folders(tmp_path, 3)]
    await until(lambda: all(f.task.done() for f in followed))
    for one in followed:
        assert isinstance(one.error, RuntimeError), one.error
        assert "Too many open files" in str(one.error)
    assert len(tried) == 1, "all at once: not one folder after another"
    assert watch.starts == 0


async def test_a_folder_removed_as_the_watch_opens_ends_its_follower_only(
    tmp_path: Path, watch: FolderWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = folders(tmp_path, 3)
    real = folder_watch.awatch

    def removing_b_first(*paths: str, **options: Any) -> AsyncIterator[set[tuple[Change, str]]]:
        if b.exists():  # between the watch's look at it and the watch opening
            b.rmdir()
        return real(*paths, **options)

    monkeypatch.setattr(folder_watch, "awatch", removing_b_first)
    followed = [Followed(watch, folder) for folder in (a, b, c)]
    try:
        await until(lambda: followed[0].wakes == 1 and followed[2].wakes == 1)
        assert isinstance(followed[1].error, FileNotFoundError)
        drop(a, "1.json")
        drop(c, "2.json")
        await until(lambda: followed[0].wakes == 2 and followed[2].wakes == 2)
    finally:
        for one in followed:
            await one.close()


async def test_when_the_running_watch_fails_every_follower_ends_with_its_error(
    tmp_path: Path, watch: FolderWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    breaking = asyncio.Event()
    watches = []

    async def breaks_later(*paths: str, **_: Any) -> AsyncIterator[set[tuple[Change, str]]]:
        watches.append(paths)
        if len(watches) == 1:  # the first watch breaks, any later one would work (and be quiet)
            await breaking.wait()
            raise RuntimeError("watch thread unexpectedly received a signal")
        await asyncio.Event().wait()
        yield set()  # an async generator, as watchfiles' awatch

    monkeypatch.setattr(folder_watch, "awatch", breaks_later)
    followed = [Followed(watch, folder) for folder in folders(tmp_path, 3)]
    await until(lambda: all(f.wakes == 1 for f in followed))
    breaking.set()
    # Said, rather than made up for quietly: each says so, and sweeps at its interval.
    await until(lambda: all(f.task.done() for f in followed))
    assert all(isinstance(f.error, RuntimeError) for f in followed)
