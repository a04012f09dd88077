"""The TCP connection under SSH: what one turn of the event loop writes is sent in one call, in
order, and nothing written is lost on a close (tests/e2e/test_sftp_*.py run SSH over it)."""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any

import pytest

from tests.support.sftp import sftp_store
from tests.support.sshd import Sshd
from tracos_sync.connectors.client_erp.files.sftp.coalescing import (
    CoalescingTunnel,
    _CoalescingTransport,
)


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def test_what_one_turn_writes_is_sent_in_one_call_in_order() -> None:
    async def scenario() -> list[bytes]:
        real = RecordingTransport()
        transport = _CoalescingTransport(real)
        for part in (b"ignore", b"request1", b"ignore", b"request2"):
            transport.write(part)
        assert real.writes == []  # not before the turn ends
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        transport.write(b"next turn")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return real.writes

    assert asyncio.run(scenario()) == [b"ignorerequest1ignorerequest2", b"next turn"]


def test_a_close_sends_what_was_written_first_and_an_abort_does_not() -> None:
    async def scenario() -> tuple[RecordingTransport, RecordingTransport]:
        closed, aborted = RecordingTransport(), RecordingTransport()
        one, two = _CoalescingTransport(closed), _CoalescingTransport(aborted)
        one.write(b"disconnect")
        one.close()
        two.write(b"dropped")
        two.abort()
        one.write(b"after the close")  # nothing more goes out on a closing transport
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return closed, aborted

    closed, aborted = asyncio.run(scenario())
    assert (closed.writes, closed.closed) == ([b"disconnect"], True)
    assert (aborted.writes, aborted.aborted) == ([], True)


def test_the_tunnel_carries_bytes_both_ways_to_the_protocol_asyncssh_gives() -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            assert isinstance(self.transport, asyncio.Transport)
            self.transport.write(data.upper())

    class Session(asyncio.Protocol):
        def __init__(self) -> None:
            self.received = b""
            self.got = asyncio.Event()
            self.lost = asyncio.Event()

        def data_received(self, data: bytes) -> None:
            self.received += data
            if self.received == b"HELLO SSH":
                self.got.set()

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.set()

    async def scenario() -> tuple[bytes, str]:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        session = Session()
        transport, given = await CoalescingTunnel().create_connection(
            lambda: session, "127.0.0.1", port
        )
        assert given is session
        transport.write(b"hello ")
        transport.write(b"ssh")
        await asyncio.wait_for(session.got.wait(), 5)
        peer = transport.get_extra_info("peername")
        transport.close()
        await asyncio.wait_for(session.lost.wait(), 5)
        server.close()
        await server.wait_closed()
        return session.received, peer[0]

    assert asyncio.run(scenario()) == (b"HELLO SSH", "127.0.0.1")


def test_the_sftp_store_runs_its_ssh_connection_over_it(
    sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tunnel is given where asyncssh takes it (given in the options only, a default of
    create_connection replaced it, silently)."""
    sent: list[int] = []
    real_flush = _CoalescingTransport._flush

    def flush(self: _CoalescingTransport) -> None:
        sent.append(1)
        real_flush(self)

    monkeypatch.setattr(_CoalescingTransport, "_flush", flush)
    store = sftp_store(sshd)

    async def scan() -> None:
        try:
            await store.scan(PurePosixPath(sshd.served))
        finally:
            await store.close()

    asyncio.run(scan())
    assert sent
