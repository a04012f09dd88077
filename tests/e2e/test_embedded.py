"""The embedded local server: overlapping runs take turns on its data folder (never a storage
engine traceback), a bounded wait ends in one plain line, and stopping it is quick."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.server import server_binary
from tracos_sync import embedded
from tracos_sync.domain.errors import FatalError


def embedded_env(env: Env) -> dict[str, str]:
    return {"SECANTUSD_BIN": server_binary(), "MONGO_EMBEDDED_DIR": str(env.root / ".data/db")}


def assert_clean(output: str) -> None:
    assert "WiredTiger" not in output and "Traceback" not in output, output
    assert "Device or resource busy" not in output, output


def test_a_run_waits_for_the_one_holding_the_local_server(env: Env) -> None:
    lock_path = env.root / ".data" / "secantusd.lock"
    lock_path.parent.mkdir(parents=True)
    with lock_path.open("w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another run has the server
        # Not check: without a database there yet, it would use one in memory (no lock).
        proc = env.popen("inbound", "--embedded", **embedded_env(env))
        assert proc.stderr is not None
        seen = ""
        for line in proc.stderr:  # until it says it waits (or, wrongly, starts)
            seen += line
            if "embedded.waiting" in line or "embedded.started" in line:
                break
        assert "embedded.waiting" in line and "another tracos-sync run" in line, seen
    out, err = proc.communicate(timeout=120)  # released: it goes on
    assert "embedded.started" in out + err, seen + out + err
    assert proc.returncode in (0, 1), out + err
    assert_clean(out + err)


def test_two_embedded_runs_at_once_both_complete(env: Env) -> None:
    runs = [env.popen("inbound", "--embedded", **embedded_env(env)) for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, out + err
        assert_clean(out + err)


def test_a_server_left_by_a_killed_run_is_stopped_by_the_next(env: Env) -> None:
    extra = embedded_env(env)
    killed = env.popen("watch", "--embedded", **extra)
    assert killed.stderr is not None
    for line in killed.stderr:
        if "embedded.started" in line:
            break
    killed.send_signal(signal.SIGKILL)  # its server, in its own session, lives on
    killed.communicate(timeout=60)
    data_dir = env.root / ".data/db"
    try:
        assert _server_processes(data_dir), "the server outlived its run"
        result = env.cli("inbound", "--embedded", timeout=60, **extra)
        assert result.code == 0, result.output
        assert "embedded.orphan_stopped" in result.output
        assert_clean(result.output)
        assert not _server_processes(data_dir)
    finally:
        for pid in _server_processes(data_dir):  # only the server this test started
            os.kill(pid, signal.SIGKILL)


async def test_waiting_is_bounded_and_ends_in_one_plain_line(tmp_path: Path) -> None:
    lock_path = tmp_path / "secantusd.lock"
    with lock_path.open("w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(FatalError) as failure:
            async with embedded.embedded_server(tmp_path / "db", wait_seconds=0.2):
                pytest.fail("started while another run held the server")
    message = str(failure.value)
    assert "another tracos-sync run" in message and "\n" not in message


async def test_the_server_stops_quickly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECANTUSD_BIN", server_binary())
    server = embedded.embedded_server(tmp_path / "db")
    await server.__aenter__()
    started = time.monotonic()
    await server.__aexit__(None, None, None)
    # SecantusDB alone waits out a 2 s join of its accept thread on SIGTERM.
    assert time.monotonic() - started < 1.8
    assert not _server_processes(tmp_path / "db")


def _server_processes(data_dir: Path) -> list[int]:
    """Pids of the local servers serving ``data_dir`` (a folder of this test's own)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if os.fsencode(data_dir) in cmdline.read_bytes().split(b"\0"):
                found.append(int(cmdline.parent.name))
    return found


async def test_a_port_taken_between_choosing_and_binding_is_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from tracos_sync.local_server import free_port

    os.environ.setdefault("SECANTUSD_BIN", server_binary())
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken, free_port()])
    monkeypatch.setattr(embedded, "free_port", lambda: next(ports))
    try:
        async with embedded.embedded_server(tmp_path / "db") as uri:
            assert str(taken) not in uri
    finally:
        squatter.close()
