"""The SFTP session's writer: the requests one turn of the event loop makes leave in one
channel write, in order; an end of file or a close sends them first; and the store's SFTP
client really runs over it (tests/e2e/test_sftp_*.py run everything else over it)."""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any, cast

import asyncssh
import pytest

from tests.support.sftp import sftp_store
from tests.support.sshd import Sshd
from tracos_sync.connectors.client_erp.files.sftp.batched_session import BatchedWriter


class Channel:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


class RecordingWriter:
    """What BatchedWriter uses of an ``SSHWriter``."""

    def __init__(self, refuse: bool = False) -> None:
        self.channel = Channel()
        self.calls: list[tuple[str, bytes]] = []
        self.refuse = refuse

    def write(self, data: bytes) -> None:
        if self.refuse:
            raise BrokenPipeError("channel not open for sending")
        self.calls.append(("write", data))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def close(self) -> None:
        self.channel.closing = True
        self.calls.append(("close", b""))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def batched(real: RecordingWriter) -> BatchedWriter:
    return BatchedWriter(cast("asyncssh.SSHWriter[bytes]", real))


async def turns(n: int = 2) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_the_requests_of_one_turn_leave_in_one_write_in_order() -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        real = RecordingWriter()
        writer = batched(real)
        for request in (b"rename", b"lstat", b"open"):
            writer.write(request)
        assert real.calls == []  # not before the turn ends
        await turns()
        writer.write(b"read")
        writer.write(b"fstat")
        await turns()
        return real.calls

    assert asyncio.run(scenario()) == [("write", b"renamelstatopen"), ("write", b"readfstat")]


def test_an_end_of_file_or_a_close_sends_what_was_written_first() -> None:
    async def scenario() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        one, two = RecordingWriter(), RecordingWriter()
        batched(one).write(b"close-handle")
        ending = batched(one)
        ending.write(b"last")
        ending.write_eof()
        closing = batched(two)
        closing.write(b"bye")
        closing.close()
        await turns()
        return one.calls, two.calls

    ended, closed = asyncio.run(scenario())
    assert ("write", b"last") in ended and ended.index(("write", b"last")) < ended.index(
        ("eof", b"")
    )
    assert closed == [("write", b"bye"), ("close", b"")]


def test_requests_for_a_closing_channel_are_dropped_and_a_refused_write_closes_it() -> None:
    """As asyncssh's own client does for a closing channel; a write the channel refuses closes
    it, so that its session ends and every request waiting fails, not waits for ever."""

    async def scenario() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        closing, refusing = RecordingWriter(), RecordingWriter(refuse=True)
        closing.channel.closing = True
        batched(closing).write(b"late")
        batched(refusing).write(b"refused")
        await turns()
        return closing.calls, refusing.calls

    closing, refusing = asyncio.run(scenario())
    assert closing == []
    assert refusing == [("close", b"")]


def test_the_store_sends_a_window_of_requests_in_fewer_channel_writes(
    sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started as the store starts its session, its requests go through the batched writer:
    32 looks at once leave in a few writes to the channel, not 32."""
    writes: list[int] = []
    real_write = asyncssh.SSHWriter.write

    def write(self: asyncssh.SSHWriter[bytes], data: bytes) -> None:
        writes.append(1)
        real_write(self, data)

    monkeypatch.setattr(asyncssh.SSHWriter, "write", write)
    store = sftp_store(sshd)
    served = PurePosixPath(sshd.served)

    async def look() -> int:
        try:
            await store.scan(served)
            writes.clear()
            await asyncio.gather(*(store.stat(served) for _ in range(32)))
            return len(writes)
        finally:
            await store.close()

    made = asyncio.run(look())
    assert 1 <= made <= 4
