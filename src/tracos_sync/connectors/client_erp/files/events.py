"""When files may be ready in the inbound folder, from the operating system's file events
(inotify on Linux, through watchfiles), so that ``watch`` takes a file as it arrives instead of at
its next sweep.

Events are hints only: they can be lost (a full kernel queue), and a network mount may have none.
The sweep decides what is taken, and goes on at its interval whatever happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import AsyncGenerator
from pathlib import Path

from watchfiles import Change, awatch

# watchfiles looks for new events every STEP_MS and hands over what it has once a step brings
# nothing new, or DEBOUNCE_MS after the first one under a steady stream: small, as each
# millisecond here is a millisecond of a file's way to TracOS (a step is a cheap wake-up).
STEP_MS = 10
DEBOUNCE_MS = 40
# Upper bound of one wait inside watchfiles' thread; only a safety net, as stopping sets the
# event that thread checks every step.
THREAD_TIMEOUT_MS = 1_000
# A file younger than INBOUND_MIN_AGE_SECONDS is left by the sweep: the wake for it comes that
# long after its last change, plus this much so that its age is then surely over the minimum.
AGE_MARGIN_SECONDS = 0.02


def _may_be_input(change: Change, path: str) -> bool:
    """A file that arrived or changed under a name the sweep would take. Files leaving (our own
    claims renaming them away) and temp or hidden names wake nothing."""
    name = os.path.basename(path)
    return change != Change.deleted and name.endswith(".json") and not name.startswith(".")


class _Filter:
    """What watchfiles hands over: possible input, and the folder itself going away (its watch
    ends with it: nothing more would ever come)."""

    def __init__(self, folder: Path) -> None:
        self.folder = os.path.abspath(folder)

    def __call__(self, change: Change, path: str) -> bool:
        return _may_be_input(change, path) or self.gone(change, path)

    def gone(self, change: Change, path: str) -> bool:
        return change == Change.deleted and os.path.abspath(path) == self.folder


async def ready_files(folder: Path, min_age_seconds: float) -> AsyncGenerator[None, None]:
    """Yields once when the folder is watched (what arrived before is the sweep's; and again
    ``min_age_seconds`` later, for what was too young then), then each time a file may have
    become ready to take: at once when it arrives, or ``min_age_seconds`` after its last change.
    Raises ``OSError`` when the folder cannot be watched."""
    stopping = threading.Event()  # checked by watchfiles' thread: cancelling would wait for it
    ready = asyncio.Event()
    due = _Due(min_age_seconds, ready)
    only = _Filter(folder)

    async def follow() -> None:
        async for changes in awatch(
            folder,
            watch_filter=only,
            recursive=False,  # processed/, rejected/ and .claims/ are ours
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            rust_timeout=THREAD_TIMEOUT_MS,
            stop_event=stopping,
        ):
            if any(only.gone(change, path) for change, path in changes):
                # Watched again once a sweep has made it anew; swept at the interval meanwhile.
                raise OSError(errno.ENOENT, f"the folder {folder} was removed")
            due.changed()

    follower = asyncio.create_task(follow())
    try:
        # Give the follower its turn: it opens the watch before its first wait, and an error
        # there (no such folder, no inotify left) is raised here rather than hidden.
        await asyncio.sleep(0)
        if follower.done():
            follower.result()
        yield
        if min_age_seconds > 0:
            due.changed()  # a file that arrived before the watch began, too young to take yet
        while True:
            waiting = asyncio.ensure_future(ready.wait())
            try:
                await asyncio.wait([waiting, follower], return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if follower.done():
                follower.result()
                return
            ready.clear()
            yield
    finally:
        due.cancel()
        stopping.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower


class _Due:
    """Sets ``ready`` at once after a change, or ``delay`` seconds after it. Under a steady
    stream of changes, a wake already planned is kept (a file it was for is ready then) and the
    latest change gets its own wake after it, so no change waits longer than ``delay``."""

    def __init__(self, delay: float, ready: asyncio.Event) -> None:
        self._delay = delay + AGE_MARGIN_SECONDS if delay > 0 else 0.0
        self._ready = ready
        self._timer: asyncio.TimerHandle | None = None
        self._next: float | None = None  # when the latest change is due, if after the timer

    def changed(self) -> None:
        if not self._delay:
            self._ready.set()
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + self._delay
        if self._timer is None:
            self._timer = loop.call_at(when, self._fire)
        else:
            self._next = when

    def _fire(self) -> None:
        self._ready.set()
        self._timer = None
        if self._next is not None:
            self._timer = asyncio.get_running_loop().call_at(self._next, self._fire)
            self._next = None

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
