"""Watch mode's pacing of input events: at once while sweeps change something; after a woken
sweep that changed nothing (a file given back to the folder is an arrival too: a file that the
service cannot read, for instance), a pause that doubles up to the interval, so it cannot spin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from tracos_sync.pipeline import RunStats
from tracos_sync.watch_events import FIRST_PAUSE_SECONDS, InputWaker


class Arrivals:
    """A connector whose input events the test sends one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[None] = asyncio.Queue()

    async def _events(self) -> AsyncIterator[None]:
        while True:
            await self.queue.get()
            yield

    def input_events(self) -> AsyncIterator[None]:
        return self._events()


async def time_to_wake(waker: InputWaker, arrivals: Arrivals, wake: asyncio.Event) -> float:
    wake.clear()
    started = time.monotonic()
    arrivals.queue.put_nowait(None)
    await asyncio.wait_for(wake.wait(), 30)
    assert waker.woke()
    return time.monotonic() - started


async def test_a_woken_sweep_that_changes_nothing_slows_the_next_wake_until_one_does() -> None:
    arrivals = Arrivals()
    waker = InputWaker(arrivals, interval=1.0)
    wake = asyncio.Event()
    waker.follow(wake)
    try:
        assert await time_to_wake(waker, arrivals, wake) < 0.5  # nothing to pace yet
        pauses = []
        for _ in range(6):  # a file given back at each sweep, and its arrival each time
            waker.swept(RunStats(), woken=True)
            pauses.append(await time_to_wake(waker, arrivals, wake))
        expected = [FIRST_PAUSE_SECONDS * 2**k for k in range(6)]
        for took, pause in zip(pauses, expected, strict=True):
            assert took >= min(pause, 1.0) - 0.01
        assert pauses[-1] < 1.6 - 0.1, "never more than the interval (1 s), not 1.6 s"
        waker.swept(RunStats(inserted=1), woken=True)  # a sweep that did something
        assert await time_to_wake(waker, arrivals, wake) < 0.5, "at once, not after 1 s"
    finally:
        await waker.close()


async def test_sweeps_not_woken_by_input_do_not_slow_it() -> None:
    arrivals = Arrivals()
    waker = InputWaker(arrivals, interval=60)
    wake = asyncio.Event()
    waker.follow(wake)
    try:
        for _ in range(8):  # the interval's sweeps, or the change stream's, finding nothing
            waker.swept(RunStats(), woken=False)
        assert await time_to_wake(waker, arrivals, wake) < 0.5
    finally:
        await waker.close()


async def test_one_sweep_finding_nothing_after_one_that_took_files_is_not_paced() -> None:
    # A sweep takes the files that arrive while it runs: their events then wake a sweep that
    # finds nothing. That one must not delay the next file; a second one in a row is paced.
    arrivals = Arrivals()
    waker = InputWaker(arrivals, interval=1.0)
    wake = asyncio.Event()
    waker.follow(wake)
    try:
        await time_to_wake(waker, arrivals, wake)
        waker.swept(RunStats(inserted=3), woken=True)
        waker.swept(RunStats(), woken=True)
        assert await time_to_wake(waker, arrivals, wake) < FIRST_PAUSE_SECONDS
        waker.swept(RunStats(), woken=True)
        assert await time_to_wake(waker, arrivals, wake) >= FIRST_PAUSE_SECONDS - 0.01
    finally:
        await waker.close()
