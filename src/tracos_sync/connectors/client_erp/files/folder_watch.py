"""One watch of file events for the inbound folders of every folder integration of a process:
one inotify instance and one thread whatever their number (Linux allows 128 instances per user
by default, and a thread per folder would wake every step for each), its events dispatched to
each folder's followers.

Integrations come and go (leases are taken and given back): a folder joining restarts the
watch with the new set, joins close together making one restart. Events during a restart are
lost, so each follower of a folder in the new watch is woken once (its sweep then looks).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, awatch

from .events import DEBOUNCE_MS, STEP_MS, THREAD_TIMEOUT_MS, Subscriber, may_be_input

# Folders joining this close together are watched from one restart; and at most one restart
# starts in RESTART_GAP_SECONDS (300 integrations starting over a few seconds: a few restarts,
# each waking every follower once). A folder waits at most this long to be watched; the sweep
# takes its files meanwhile, as always.
RESTART_QUIET_SECONDS = 0.05
RESTART_GAP_SECONDS = 0.5


@dataclass
class _Watch:
    """One running watch: the folders it has, and what stops its thread (checked by
    watchfiles' thread every step: a cancel alone would wait for its timeout)."""

    folders: frozenset[str]
    task: asyncio.Task[None]
    stopping: threading.Event


class FolderWatch:
    """The file events of folders on this host, for every connector of one event loop (the
    bootstrap makes one per process and hands it to each folder connector). Nothing runs until a
    folder is followed; the watch ends when the last follower leaves."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._followers: dict[str, set[Subscriber]] = {}
        self._watch: _Watch | None = None
        self._runner: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.starts = 0  # watches started, restarts included

    async def ready_files(self, folder: Path, min_age_seconds: float) -> AsyncGenerator[None, None]:
        """Yields once when the folder is watched (what arrived before is the sweep's; and again
        ``min_age_seconds`` later, for what was too young then), then each time a file may have
        become ready to take: at once when it arrives, or ``min_age_seconds`` after its last
        change. Raises ``OSError`` when the folder cannot be watched or is removed, or when the
        shared watch fails (then for every folder)."""
        follower = Subscriber(folder, min_age_seconds)
        self._join(follower)
        try:
            while True:
                await follower.next()
                yield
        finally:
            follower.due.cancel()
            self._leave(follower)

    def _join(self, follower: Subscriber) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # nothing of another (ended) event loop's is of use here
            self._loop, self._followers, self._watch, self._runner = loop, {}, None, None
            self._changed = asyncio.Event()
        # Said at once, and no restart of everyone's watch for a folder that cannot be in it.
        unwatchable = _unwatchable(follower.folder)
        if unwatchable is not None:
            raise unwatchable
        self._followers.setdefault(follower.folder, set()).add(follower)
        if self._watch is not None and follower.folder in self._watch.folders:
            follower.watched()
            return
        self._changed.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
            self._runner.add_done_callback(_retrieve)

    def _leave(self, follower: Subscriber) -> None:
        """A folder left is still watched until the next restart: harmless, and no restart."""
        same = self._followers.get(follower.folder, set())
        same.discard(follower)
        if not same:
            self._followers.pop(follower.folder, None)
        if not self._followers:
            self._changed.set()  # the last one: the watch ends

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_start = 0.0
        try:
            while True:
                if self._followers:  # the watch in place, if any, serves meanwhile
                    await asyncio.sleep(max(RESTART_QUIET_SECONDS, next_start - loop.time()))
                await self._stop()
                self._changed.clear()
                if not self._followers:
                    return  # no wait since the check: a follower joining now starts a runner
                await self._start()
                next_start = loop.time() + RESTART_GAP_SECONDS
                await self._until_restart()
        except Exception as exc:  # a bug here must not leave followers waiting for ever
            self._fail(list(self._followers), exc)
            raise
        finally:
            await self._stop()

    async def _start(self) -> None:
        """Watch every followed folder; a folder that cannot be watched ends its followers
        only, a failure of the watch itself ends them all."""
        folders = self._watchable(self._followers)
        while folders:
            stopping = threading.Event()
            task = asyncio.create_task(self._follow(folders, stopping))
            task.add_done_callback(_retrieve)
            watch = _Watch(frozenset(folders), task, stopping)
            # Give it its turn: it opens the watch before its first wait, and an error there
            # is raised by then.
            await asyncio.sleep(0)
            if not watch.task.done():
                self._watch = watch
                self.starts += 1
                for folder in folders:
                    for follower in self._followers.get(folder, ()):
                        follower.watched()
                return
            error = watch.task.exception() or OSError(errno.EIO, "the file events ended")
            still = self._watchable(folders)
            if still == folders:  # none of them in particular: the watch itself
                self._fail(list(self._followers), error)
                return
            folders = still

    async def _follow(self, folders: list[str], stopping: threading.Event) -> None:
        async for changes in awatch(
            *folders,
            watch_filter=self._wanted,
            recursive=False,  # processed/, rejected/ and .claims/ are ours
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            rust_timeout=THREAD_TIMEOUT_MS,
            stop_event=stopping,
        ):
            self._dispatch(changes)

    async def _until_restart(self) -> None:
        """Until a folder joins that the watch does not have, or nobody follows, or the watch
        fails (which ends every follower)."""
        while self._watch is not None:
            waiting = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait([waiting, self._watch.task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if self._watch.task.done():
                error = self._watch.task.exception() or OSError(errno.EIO, "the watch ended")
                self._fail(list(self._followers), error)
                return
            self._changed.clear()
            if not self._followers or not self._followers.keys() <= self._watch.folders:
                return

    async def _stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stopping.set()
            with contextlib.suppress(Exception):
                await watch.task  # its thread sees the stop within a step

    def _wanted(self, change: Change, path: str) -> bool:
        """Possible input, and a watched folder itself going away (its watch ends with it)."""
        return may_be_input(change, path) or self._gone(change, path)

    def _gone(self, change: Change, path: str) -> bool:
        return change == Change.deleted and self._watch is not None and path in self._watch.folders

    def _dispatch(self, changes: Iterable[tuple[Change, str]]) -> None:
        for change, path in changes:
            if self._gone(change, path):
                # Watched again once a sweep has made it anew (its followers join again).
                assert self._watch is not None
                self._watch.folders -= {path}
                gone = OSError(errno.ENOENT, f"the folder {path} was removed")
                self._fail([path], gone)
                continue
            for follower in self._followers.get(os.path.dirname(path), ()):
                follower.due.changed()

    def _watchable(self, folders: Iterable[str]) -> list[str]:
        """``folders`` that can be watched now; the followers of the others are ended."""
        kept = []
        for folder in list(folders):
            unwatchable = _unwatchable(folder)
            if unwatchable is None:
                kept.append(folder)
            else:
                self._fail([folder], unwatchable)
        return kept

    def _fail(self, folders: list[str], error: BaseException) -> None:
        for folder in folders:
            for follower in self._followers.pop(folder, set()):
                follower.fail(error)


def _unwatchable(folder: str) -> OSError | None:
    """Why ``folder`` cannot be watched, if that can be told from here."""
    if not os.path.isdir(folder):
        return FileNotFoundError(errno.ENOENT, "no such folder to watch", folder)
    if not os.access(folder, os.R_OK | os.X_OK):
        return PermissionError(errno.EACCES, "the folder cannot be read, so not watched", folder)
    return None


def _retrieve(task: asyncio.Task[None]) -> None:
    """Its error is read where it matters; never "never retrieved" at exit."""
    if not task.cancelled():
        task.exception()
