"""The SFTP store's request guard (``unless_lost``) cancelled from outside, as when a stop's
grace runs out while a request waits on a server that stopped answering: the request's own
cleanup may then fail on the dropped connection (an open file's close), and that late error is
taken, never printed as "Task exception was never retrieved"."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import asyncssh

from tracos_sync.connectors.client_erp.files.sftp.lost import unless_lost


async def test_a_request_cancelled_from_outside_leaves_no_unretrieved_error() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    dropped = asyncio.Event()
    started = asyncio.Event()

    async def request_with_an_open_file() -> None:
        try:
            started.set()
            await asyncio.Event().wait()  # a request the server never answers
        finally:
            await dropped.wait()  # the file's close goes out once the connection drops...
            raise asyncssh.SFTPConnectionLost("Connection closed")  # ...and fails

    try:
        guarded = asyncio.ensure_future(unless_lost(request_with_an_open_file(), asyncio.Event()))
        await started.wait()
        guarded.cancel()  # the stop's grace ran out
        await asyncio.gather(guarded, return_exceptions=True)
        dropped.set()  # the store closes its connection
        for _ in range(5):
            await asyncio.sleep(0)
        cancelled = guarded.cancelled()
        del guarded  # its cancellation's traceback holds the request's task
        gc.collect()  # an error never retrieved is reported when its task is collected
    finally:
        loop.set_exception_handler(previous)

    assert cancelled
    assert [c["message"] for c in reported] == [], reported
