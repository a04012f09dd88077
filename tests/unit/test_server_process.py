"""The one helper the test servers are started and stopped with (tests/support/process.py), on
small Python programs standing in for a server: ready on a port; ending at start with its log's
tail in the error; a taken port traded on a first start only; never ready, killed at the
deadline; deaf to SIGTERM, killed after the stop's wait; reaped every time."""

from __future__ import annotations

import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import PortTaken, ServerProcess, start_on_a_port

# Listens on the port given, says so, serves until SIGTERM (or forever with "deaf").
SERVER = """
import signal, socket, sys, time
if len(sys.argv) > 2 and sys.argv[2] == "deaf":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
listener = socket.socket()
try:
    listener.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as exc:
    print("cannot bind:", exc, flush=True)
    sys.exit(3)
listener.listen()
print("listening", flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture(autouse=True)
def none_left() -> Iterator[None]:
    """Every server launched is killed at the end, whatever the test found."""
    yield
    for server in LAUNCHED:
        server.kill()
    LAUNCHED.clear()


LAUNCHED: list[ServerProcess] = []


def launch(tmp_path: Path, *args: str) -> ServerProcess:
    command = [sys.executable, "-c", SERVER, *args]
    LAUNCHED.append(ServerProcess.launch("a server", command, tmp_path / "log"))
    return LAUNCHED[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_server_is_ready_once_its_port_accepts_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    server = launch(tmp_path, str(port))
    server.wait_until_ready(lambda: server.listens_on(port), 30, "cannot bind")
    assert "listening" in server.said()
    server.stop()
    assert server.process.returncode == -signal.SIGTERM  # reaped, ended by the SIGTERM


def test_a_server_ending_at_start_is_an_error_with_its_log(tmp_path: Path) -> None:
    server = ServerProcess.launch(
        "a server", [sys.executable, "-c", "print('no licence file'); raise SystemExit(2)"],
        tmp_path / "log",
    )  # fmt: skip
    with pytest.raises(RuntimeError, match=r"(?s)exited at start \(code 2\).*no licence file"):
        server.wait_until_ready(lambda: False, 30, "cannot bind")


def test_a_taken_port_is_traded_on_a_first_start_only(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1]]
        started: list[ServerProcess] = []

        def start() -> None:
            server = launch(tmp_path, str(ports[-1]))
            started.append(server)
            # Whoever holds the port accepts a connection: ready is this process listening.
            server.wait_until_ready(lambda: server.listens_on(ports[-1]), 30, "cannot bind")

        with pytest.raises(PortTaken, match="cannot bind"):
            start_on_a_port(start, lambda: ports.append(free_port()), may_trade=False)
        start_on_a_port(start, lambda: ports.append(free_port()), may_trade=True)
    assert len(ports) == 2 and started[-1].listens_on(ports[1])
    started[-1].stop()
    assert all(server.process.poll() is not None for server in started)


def test_a_server_never_ready_is_killed_at_the_deadline(tmp_path: Path) -> None:
    server = launch(tmp_path, str(free_port()))
    with pytest.raises(RuntimeError, match=r"not ready within 0.5s; its log .* ends"):
        server.wait_until_ready(lambda: False, 0.5, "cannot bind")
    assert server.process.returncode == -signal.SIGKILL


def test_a_server_deaf_to_sigterm_is_killed_after_the_wait(tmp_path: Path) -> None:
    port = free_port()
    server = launch(tmp_path, str(port), "deaf")
    server.wait_until_ready(lambda: server.listens_on(port), 30, "cannot bind")
    started = time.monotonic()
    server.stop(within=0.5)
    assert server.process.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5
