"""Stopping on SIGINT/SIGTERM, shared by a one-shot run and watch mode: the signal asks the work
to stop after the batch in hand; work still running ``STOP_GRACE_SECONDS`` later is cancelled
(its claimed inputs are given back), so the process always exits within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("tracos_sync")
T = TypeVar("T")

STOP_GRACE_SECONDS = 3.0
# How long work in flight may still take once its caller was cancelled (archives).
MOMENT_SECONDS = 1.0


class Abandoned(Exception):
    """The work was still running when the grace after a stop request ended; it was cancelled."""


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM set ``stop`` instead of killing the process."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """Await ``work``; once ``stop`` is set it gets ``STOP_GRACE_SECONDS`` more (the batch in
    hand finishes), then it is cancelled and ``Abandoned`` raised once it has ended, or after
    ``STOP_GRACE_SECONDS`` again: the giving back a cancellation starts may wait on a server
    that stopped answering, and is left to the closing of its connection (what it did not give
    back stays claimed, and is recovered as a dead instance's claims are)."""
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
            if not done:
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
                if done:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        task.result()
                log.warning(
                    "run.abandoned",
                    reason="still running after the stop grace"
                    + ("" if done else "; cancelled, and still giving back after the grace again"),
                )
                raise Abandoned
        return task.result()
    finally:
        stopped.cancel()
        if not task.done():  # we were cancelled ourselves: take the work with us
            task.cancel()


async def given_a_moment(task: asyncio.Task[Any], seconds: float | None = None) -> bool:
    """Work in flight when its caller was cancelled (a stop's grace ran out): ``seconds``
    (``MOMENT_SECONDS``) to end, not its own whole budget (a server that stopped answering
    would hold the stop), then cancelled. Whether it ended. Its failure is the cancelled
    caller's, already on its way out: not said again."""
    done, _ = await asyncio.wait({task}, timeout=MOMENT_SECONDS if seconds is None else seconds)
    if not done:
        task.cancel()
    task.add_done_callback(_retrieved)
    return bool(done)


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def run_bounded(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, whose ending waits at most ``STOP_GRACE_SECONDS`` for each of: the
    tasks still running (cancelled), the async generators still open, the worker threads.
    ``asyncio.run`` waits for ever: a cancelled task whose cleanup waited on an SFTP server that
    had stopped answering kept a run that had written its summary from exiting (hostile pass 4,
    F1, seen again in CI after the close was bounded). What such work held stays claimed and is
    recovered as a dead instance's claims are."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            for ending in (
                asyncio.gather(*tasks, return_exceptions=True),
                loop.shutdown_asyncgens(),
                loop.shutdown_default_executor(),
            ):
                loop.run_until_complete(_within_grace(ending))
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _within_grace(ending: Awaitable[Any]) -> None:
    with contextlib.suppress(TimeoutError, Exception):
        await asyncio.wait_for(ending, STOP_GRACE_SECONDS)
