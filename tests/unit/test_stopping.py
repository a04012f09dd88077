"""Stopping on a signal: the work's grace, its cancellation, and a bound on both."""

from __future__ import annotations

import asyncio
import time

import pytest

from tracos_sync import stopping
from tracos_sync.stopping import Abandoned, until_stopped

GRACE = 0.2


async def test_work_that_ends_within_the_grace_is_not_abandoned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stopping, "STOP_GRACE_SECONDS", GRACE)
    stop = asyncio.Event()
    stop.set()
    assert await until_stopped(asyncio.sleep(GRACE / 4, "done"), stop) == "done"


async def test_work_still_giving_back_after_its_cancellation_is_left_after_the_grace_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hostile pass 2, F4: the giving back a cancellation starts waited on a server that
    stopped answering (59.5 s at SFTP_REQUEST_SECONDS=60); the stop takes the grace twice."""
    monkeypatch.setattr(stopping, "STOP_GRACE_SECONDS", GRACE)
    given_back = asyncio.Event()

    async def stuck_giving_back() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # the give-back's own request, never answered
        finally:
            given_back.set()

    stop = asyncio.Event()
    work = until_stopped(stuck_giving_back(), stop)
    stop.set()
    start = time.monotonic()
    with pytest.raises(Abandoned):
        await work
    assert time.monotonic() - start < 2 * GRACE + 0.3
    await asyncio.wait_for(given_back.wait(), 1)  # cancelled once more on the way out


def test_a_run_ends_though_a_task_left_behind_never_finishes_its_cleanup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hostile pass 4, F1, seen again in CI: a cancelled task whose cleanup waits on a server
    that stopped answering (a request never answered) kept the process from exiting after its
    summary; ``asyncio.run`` waits for it for ever, ``run_bounded`` a grace."""
    monkeypatch.setattr(stopping, "STOP_GRACE_SECONDS", 0.1)

    async def stuck_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(asyncio.Event().wait())  # a close nobody answers

    async def main() -> int:
        asyncio.get_running_loop().create_task(stuck_cleanup())
        await asyncio.sleep(0)
        return 3

    started = time.monotonic()
    assert stopping.run_bounded(main()) == 3
    assert time.monotonic() - started < 5
