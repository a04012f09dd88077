"""Watch mode's wake-ups from the client side: a connector that can tell when input may be ready
(files arriving in a folder) wakes the loop at once, so a file does not wait for the next sweep.

Events are hints: lost ones are made up by the sweep at ``WATCH_INTERVAL``, and a connector that
cannot watch (no such folder yet, no inotify left) is said once and tried again after a sweep.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from tracos_sync.domain.ports import SupportsInputEvents
from tracos_sync.failures import describe_error
from tracos_sync.pipeline import RunStats

log = structlog.get_logger("tracos_sync.watch")

# After a woken sweep that changed nothing, the next wake waits this long, doubling up to the
# interval while such sweeps go on: a file we give back to the folder (one that cannot be read)
# is an arrival too, and must not spin the loop. Any change resets it.
FIRST_PAUSE_SECONDS = 0.05


class InputWaker:
    """Follows a connector's input events and sets the loop's ``wake`` for each."""

    def __init__(self, source: SupportsInputEvents, interval: float) -> None:
        self._source = source
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._working: bool | None = None
        self._woke = False
        self._pause = 0.0
        self._not_before = 0.0
        self._changed = False  # whether the last sweep changed something

    def follow(self, wake: asyncio.Event) -> None:
        """Start following (again, if it stopped)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(wake))

    def woke(self) -> bool:
        """Whether the coming sweep was woken by input events (and forget it)."""
        woke, self._woke = self._woke, False
        return woke

    def swept(self, stats: RunStats, woken: bool) -> None:
        """Pace the next wake by what the sweep just run changed."""
        changed = stats.inserted or stats.updated or stats.rejected or stats.exported
        if changed:
            self._pause = 0.0
        elif woken and not self._changed:
            # Not the first woken sweep to find nothing after one that changed something: a
            # sweep takes the files that arrive while it runs, and the events they raised
            # meanwhile wake one sweep that finds them gone. That one is not paced.
            self._pause = min(self._interval, max(FIRST_PAUSE_SECONDS, self._pause * 2))
        self._changed = bool(changed)
        self._not_before = asyncio.get_running_loop().time() + self._pause

    async def _follow(self, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for _ in self._source.input_events():
                self._state(True)
                delay = self._not_before - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._woke = True
                wake.set()
            self._state(False, "the events ended")
        except Exception as exc:
            self._state(False, describe_error(exc))

    def _state(self, working: bool, error: str = "") -> None:
        """Logged once per change: sweeping at the interval alone is a slower service, not a
        failure."""
        if working == self._working:
            return
        if working:
            if self._working is not None:
                log.info("watch.input_events", state="available")
        else:
            log.warning("watch.input_events", state="not available, polling", error=error)
        self._working = working

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
