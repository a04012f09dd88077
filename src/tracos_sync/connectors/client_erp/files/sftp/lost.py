"""An SFTP operation bounded by the life of its connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import asyncssh

T = TypeVar("T")
# How long an operation whose connection was lost may take to fail by itself.
LOST_GRACE_SECONDS = 2.0


class Lost:
    """Set once the connection is gone, with why (the keepalive's "not responding", a reset).
    Its future is shared by every operation on the connection: waiting on it costs no task of
    its own per operation (3-4% of a run of 2,000 small files, measured, went to such tasks)."""

    def __init__(self) -> None:
        self.reason = ""
        self._gone = False
        self._future: asyncio.Future[None] | None = None

    def set(self, exc: Exception | None) -> None:
        self.reason = str(exc) if exc is not None else "closed by the server"
        self._gone = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def future(self) -> asyncio.Future[None]:
        """Done once the connection is gone (made in the running loop on first use)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self._gone:
                self._future.set_result(None)
        return self._future


async def unless_lost(work: Awaitable[T], lost: Lost) -> T:
    """``work``'s result, or its own error, however the connection ends: asyncssh fails a lost
    connection's requests itself, so ``work`` gets a moment to end that way (its sub-tasks end
    cleanly too); one still waiting, on a request never answered, is cancelled and counts as a
    lost connection. Cancelled with us (a stop), its late error (a file's close) is retrieved."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        either: set[asyncio.Future[Any]] = {task, lost.future()}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=LOST_GRACE_SECONDS)
    finally:
        task.cancel()  # nothing if it is done
    if task.done() and not task.cancelled():
        return task.result()
    with contextlib.suppress(BaseException):
        await task  # its cancellation, finished
    raise asyncssh.ConnectionLost(f"the connection closed during an operation: {lost.reason}")


@contextlib.asynccontextmanager
async def opened(
    sftp: asyncssh.SFTPClient,
    path: str,
    mode: str,
    attrs: asyncssh.SFTPAttrs | None = None,
    block_size: int | None = -1,  # None: each read one request, never split (asyncssh)
) -> AsyncIterator[asyncssh.SFTPClientFile]:
    """``sftp.open``, whose close at the end is waited for only ``LOST_GRACE_SECONDS`` once
    the task is being cancelled (a stop). asyncssh drops a request made on a channel that is
    closing without failing it: a close made in the cleanup of a cancelled request, on a session
    that stopped answering, was waited for for ever, and held the process's exit with it
    (hostile pass 4, F1). Otherwise the close is waited for as any request (its operation's
    ``SFTP_REQUEST_SECONDS``)."""
    remote = await sftp.open(path, mode, attrs or asyncssh.SFTPAttrs(), block_size=block_size)
    try:
        yield remote
    finally:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
                async with asyncio.timeout(LOST_GRACE_SECONDS):
                    await remote.close()
        else:
            await remote.close()
