"""An SFTP operation bounded by the life of its connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

import asyncssh

T = TypeVar("T")
# How long an operation whose connection was lost may take to fail by itself.
LOST_GRACE_SECONDS = 2.0


class Lost:
    """Set once the connection is gone, with why (the keepalive's "not responding", a reset)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason = ""

    def set(self, exc: Exception | None) -> None:
        self.reason = str(exc) if exc is not None else "closed by the server"
        self.event.set()


async def unless_lost(work: Awaitable[T], lost: Lost) -> T:
    """``work``'s result, or its own error, however the connection ends: asyncssh fails a lost
    connection's requests itself, so ``work`` gets a moment to end that way (its sub-tasks end
    cleanly too); one still waiting, on a request never answered, is cancelled and counts as a
    lost connection. Cancelled with us (a stop), its late error (a file's close) is retrieved."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    watcher = asyncio.ensure_future(lost.event.wait())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=LOST_GRACE_SECONDS)
    finally:
        watcher.cancel()
        task.cancel()  # nothing if it is done
    if task.done() and not task.cancelled():
        return task.result()
    with contextlib.suppress(BaseException):
        await task  # its cancellation, finished
    raise asyncssh.ConnectionLost(f"the connection closed during an operation: {lost.reason}")
