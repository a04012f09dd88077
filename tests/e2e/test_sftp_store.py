"""The SFTP store against Debian's OpenSSH server when the server goes away: one connection
reused, re-opened within the retry budget when the server comes back, a clear refusal when its
host key changed, and unavailability (not a hang) when it stays down."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
import threading
import time
from pathlib import PurePosixPath
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.sftp import sftp_store
from tests.support.sshd import Sshd
from tracos_sync.connectors.client_erp.files.sftp import connecting
from tracos_sync.connectors.client_erp.files.sftp.location import Server
from tracos_sync.connectors.client_erp.files.sftp.store import SftpStore
from tracos_sync.connectors.client_erp.files.sftp.trust import Credentials
from tracos_sync.connectors.client_erp.files.store import StoreRefused, StoreUnavailable


def test_one_connection_serves_many_operations(sshd: Sshd) -> None:
    store = sftp_store(sshd)
    folder = PurePosixPath(sshd.served)

    async def many() -> None:
        await asyncio.gather(
            *(store.create_exclusive(folder / f"{n}.json", b"{}") for n in range(50))
        )
        await store.close()

    asyncio.run(many())
    assert store.connections == 1
    assert len(list(sshd.served.glob("*.json"))) == 50


def test_a_server_killed_and_back_within_the_budget_is_reconnected(sshd: Sshd) -> None:
    store = sftp_store(sshd, retry_seconds=20)
    folder = PurePosixPath(sshd.served)

    async def across_a_restart() -> None:
        await store.create_exclusive(folder / "before.json", b"{}")
        sshd.kill()
        restarted = threading.Timer(1.0, sshd.start)
        restarted.start()
        try:
            await store.write_atomic(folder / "after.json", b"{}")
        finally:
            restarted.join()
            await store.close()

    asyncio.run(across_a_restart())
    assert store.connections == 2
    assert sorted(p.name for p in sshd.served.iterdir()) == ["after.json", "before.json"]


def test_a_server_that_stays_down_is_unavailable_after_the_budget(sshd: Sshd) -> None:
    store = sftp_store(sshd, retry_seconds=1)
    sshd.kill()

    with pytest.raises(StoreUnavailable) as raised:
        asyncio.run(store.scan(PurePosixPath(sshd.served)))

    # Said as it is: the real time waited, the tries, the cause (no "[Errno N]" before it).
    assert re.fullmatch(
        r"sftp://\w+@127\.0\.0\.1:\d+: no working connection for 1\.\ds \(\d+ tries\): "
        r"connecting failed: .*Connect call failed.*",
        str(raised.value),
    ), str(raised.value)
    assert raised.value.errno == errno.ECONNREFUSED


def test_a_changed_host_key_is_refused_with_one_clear_reason(sshd: Sshd) -> None:
    sshd.change_host_key()
    sshd.restart()
    store = sftp_store(sshd)

    with pytest.raises(StoreRefused, match="host key is not the one"):
        asyncio.run(store.scan(PurePosixPath(sshd.served)))


def test_operations_in_flight_when_the_server_dies_all_end(sshd: Sshd) -> None:
    """A thousand writes in flight on one connection when the server is killed: each is tried
    again on a new connection and ends; none waits for ever on the dead one."""
    store = sftp_store(sshd, retry_seconds=30)
    folder = PurePosixPath(sshd.served)

    async def writes() -> int:
        async def kill_midway() -> int:
            # The condition is on the server's disk: nothing signals it, so it is polled.
            while (done := len(list(sshd.served.glob("*.json")))) < 50:  # noqa: ASYNC110
                await asyncio.sleep(0.002)
            sshd.kill()
            await asyncio.sleep(0.3)
            await asyncio.to_thread(sshd.start)
            return done

        killer = asyncio.ensure_future(kill_midway())
        await asyncio.wait_for(
            asyncio.gather(*(store.write_atomic(folder / f"{n}.json", b"{}") for n in range(1000))),
            timeout=60,
        )
        await store.close()
        return await killer

    written_at_the_kill = asyncio.run(writes())
    assert written_at_the_kill < 1000  # the kill landed with writes in flight
    assert len(list(sshd.served.glob("*.json"))) == 1000
    assert store.connections >= 2


async def stalled_write(
    store: SftpStore, sshd: Sshd, limit: float
) -> tuple[float, list[dict[str, Any]]]:
    """A write once the server's session processes are stopped (SIGSTOP: the TCP connection
    stays up, nothing answers): how long it took to land, and what was logged meanwhile."""
    folder = PurePosixPath(sshd.served)
    await store.scan(folder)
    stopped = sshd.sessions()
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with capture_logs() as logs:
            await asyncio.wait_for(store.write_atomic(folder / "1.json", b"{}"), limit)
        return time.monotonic() - started, logs
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        await store.close()


def test_a_server_that_stops_answering_is_reconnected_after_the_request_deadline(
    sshd: Sshd,
) -> None:
    """The server's session process stopped (SIGSTOP: the TCP connection stays up, nothing
    answers): the operation ends its wait after SFTP_REQUEST_SECONDS and lands on a new
    connection, within the budget."""
    store = sftp_store(sshd, retry_seconds=10, request_seconds=1)

    took, _ = asyncio.run(stalled_write(store, sshd, limit=15))

    assert took < 5, took
    assert (sshd.served / "1.json").read_bytes() == b"{}"
    assert store.connections == 2


def test_a_stalled_session_is_reconnected_though_its_wait_outlasts_the_budget(
    sshd: Sshd,
) -> None:
    """Hostile pass 3, #1: the first try waits SFTP_REQUEST_SECONDS (3 s here; 60 s by default)
    on a stalled session, longer than the whole SFTP_RETRY_SECONDS (1 s; 30 s by default). The
    budget counts from that failure: the operation is tried on a new connection and lands."""
    store = sftp_store(sshd, retry_seconds=1, request_seconds=3)

    took, logs = asyncio.run(stalled_write(store, sshd, limit=20))

    assert [e["reason"] for e in logs if e["event"] == "sftp.reconnecting"] == [
        "no answer within SFTP_REQUEST_SECONDS=3"
    ]
    assert 3 <= took < 10, took
    assert (sshd.served / "1.json").read_bytes() == b"{}"
    assert store.connections == 2


def test_a_silent_server_is_said_to_time_out_with_the_time_really_waited(
    sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hostile pass 3, #3: sessions and listener stopped (the port still takes connections,
    nothing answers). The try on the stalled session, then each new connection, time out; the
    failure says so, with the time waited since the operation began, not the budget's."""
    monkeypatch.setattr(connecting, "CONNECT_TIMEOUT_SECONDS", 1.0)
    store = sftp_store(sshd, retry_seconds=0, request_seconds=1)
    folder = PurePosixPath(sshd.served)

    async def silent_scan() -> None:
        await store.scan(folder)
        assert sshd.running is not None
        stopped = [*sshd.sessions(), sshd.running.pid]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.wait_for(store.scan(folder), timeout=20)
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            await store.close()

    with pytest.raises(StoreUnavailable) as raised:
        asyncio.run(silent_scan())

    said = str(raised.value)
    # One try on the stalled session (1 s), one owed on a new connection (1 s to connect).
    found = re.fullmatch(
        r"sftp://\w+@127\.0\.0\.1:\d+: no working connection for (\d+\.\d)s \(2 tries\): "
        r"connecting timed out after 1s",
        said,
    )
    assert found, said
    assert 2 <= float(found[1]) < 5, said
    assert raised.value.errno == errno.ETIMEDOUT


class RetryingStore(SftpStore):
    """Every operation run as the try after a dropped connection is (``retried``)."""

    async def _call(self, path: PurePosixPath, operation: Any) -> Any:
        return await super()._call(path, lambda sftp, _: operation(sftp, True))


def test_a_move_cut_between_link_and_unlink_is_finished_when_tried_again(sshd: Sshd) -> None:
    """Hostile pass 2, F5: OpenSSH renames by link then unlink; a connection cut between the
    two leaves the file under both names, and the move tried again found its target taken:
    archived twice (processed/42.json and 42~1.json, one inode). Tried again, the move now
    finishes the unlink; a different file at the target is still never replaced."""
    claims, processed = sshd.served / "claims", sshd.served / "processed"
    for folder in (claims, processed):
        folder.mkdir()
    held = claims / "42.json"
    held.write_bytes(b'{"orderNo": 42}')
    os.link(held, processed / "42.json")  # link() landed, unlink() did not: the cut
    other = claims / "43.json"
    other.write_bytes(b'{"orderNo": 43}')
    (processed / "43.json").write_bytes(b'{"orderNo": 34}')  # the same size: not the same
    sshd.give_to_server(claims, processed, held, other, processed / "43.json")
    store = RetryingStore(
        Server(sshd.user, "127.0.0.1", sshd.port),
        Credentials(sshd.known_hosts, key_file=sshd.client_key_file),
        retry_seconds=5,
    )

    async def moves() -> None:
        try:
            await store.move_no_clobber(PurePosixPath(held), PurePosixPath(processed / "42.json"))
            with pytest.raises(FileExistsError):
                await store.move_no_clobber(
                    PurePosixPath(other), PurePosixPath(processed / "43.json")
                )
        finally:
            await store.close()

    asyncio.run(moves())
    assert sorted(p.name for p in claims.iterdir()) == ["43.json"]
    assert sorted(p.name for p in processed.iterdir()) == ["42.json", "43.json"]
    assert (processed / "43.json").read_bytes() == b'{"orderNo": 34}'
