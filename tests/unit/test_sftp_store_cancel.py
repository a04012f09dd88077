"""The SFTP store's request guard (``unless_lost``) cancelled from outside, as when a stop's
grace runs out while a request waits on a server that stopped answering: the request's own
cleanup may then fail on the dropped connection (an open file's close), and that late error is
taken, never printed as "Task exception was never retrieved"."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import asyncssh
import pytest

from tracos_sync.connectors.client_erp.files.sftp import lost
from tracos_sync.connectors.client_erp.files.sftp.lost import Lost, unless_lost


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
        guarded = asyncio.ensure_future(unless_lost(request_with_an_open_file(), Lost()))
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


async def test_a_request_left_waiting_on_a_lost_connection_fails_saying_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hostile pass 3, #3: the keepalive gave up on the server; a request the connection's end
    left waiting fails with the keepalive's reason, not a bare "connection closed"."""
    monkeypatch.setattr(lost, "LOST_GRACE_SECONDS", 0.01)
    gone = Lost()

    async def never_answered() -> None:
        await asyncio.Event().wait()

    guarded = asyncio.ensure_future(unless_lost(never_answered(), gone))
    await asyncio.sleep(0)
    gone.set(asyncssh.ConnectionLost("Server not responding to keepalive"))

    with pytest.raises(asyncssh.ConnectionLost) as raised:
        await guarded
    assert str(raised.value) == (
        "the connection closed during an operation: Server not responding to keepalive"
    )


class NeverClosing:
    """A remote file whose close is never answered (a session that stopped answering, or a
    request asyncssh dropped on a closing channel)."""

    def __init__(self) -> None:
        self.closes = 0

    async def close(self) -> None:
        self.closes += 1
        await asyncio.Event().wait()


class OpensNeverClosing:
    def __init__(self) -> None:
        self.file = NeverClosing()

    async def open(self, *_: Any, **__: Any) -> NeverClosing:
        return self.file


async def test_a_stop_waits_on_a_files_close_for_a_moment_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hostile pass 4, F1: a read cancelled by a stop closes its file in its cleanup; no answer
    comes, and the task (and with it the process's exit) waited for ever."""
    monkeypatch.setattr(lost, "LOST_GRACE_SECONDS", 0.05)
    sftp = OpensNeverClosing()
    reading = asyncio.Event()

    async def read() -> None:
        async with lost.opened(sftp, "/f", "rb") as _:  # type: ignore[arg-type]
            reading.set()
            await asyncio.Event().wait()  # the read, never answered

    task = asyncio.ensure_future(read())
    await reading.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done and task.cancelled()
    assert sftp.file.closes == 1  # the close was sent


async def test_outside_a_stop_a_files_close_is_waited_for_and_its_failure_raised() -> None:
    class FailingClose:
        async def close(self) -> None:
            raise asyncssh.SFTPFailure("close failed")

    class Opens:
        async def open(self, *_: Any, **__: Any) -> FailingClose:
            return FailingClose()

    with pytest.raises(asyncssh.SFTPFailure):
        async with lost.opened(Opens(), "/f", "rb"):  # type: ignore[arg-type]
            pass
