"""Driving a ``tracos-sync watch`` process from a test: waiting on a condition while it runs,
stopping it with a signal, reading its metrics page, and pointing it at a database server of
the test's own (one the test may kill and start again)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.conftest import Env, Result
from tests.server import Server, free_port


def wait_until(
    condition: Callable[[], bool], proc: subprocess.Popen[str] | None, limit: float
) -> float:
    """Seconds until ``condition`` holds; fails when ``proc`` (if any: one that ended already
    cannot) ends first or ``limit`` passes."""
    start = time.monotonic()
    while not condition():
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < limit, "not within the time allowed"
        time.sleep(0.05)
    return time.monotonic() - start


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[Result, float]:
    """``proc`` signalled and waited for: its result, and how long it took to end."""
    start = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return Result(proc.returncode, out, err), time.monotonic() - start


def watch_with_metrics(
    env: Env, *options: str, **settings: str
) -> tuple[subprocess.Popen[str], int]:
    """``tracos-sync [options] watch`` started, its metrics page served on a free local port:
    the process and the port."""
    port = free_port()
    proc = env.popen(
        *options, "watch", METRICS_PORT=str(port), METRICS_ADDRESS="127.0.0.1", **settings
    )
    return proc, port


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metrics_or_empty(port: int) -> str:
    """The metrics page, or "" while it does not answer yet (to wait on a line of it)."""
    try:
        return metrics(port)
    except OSError:
        return ""


@contextlib.contextmanager
def own_server(env: Env, storage: Path, *, test_commands: bool = False) -> Iterator[Server]:
    """A database server of the test's own, storing in ``storage``, which ``env`` (and every
    process it starts from now on) uses; stopped at the end."""
    server = Server(storage=storage, test_commands=test_commands).start()
    env.uri = server.uri
    try:
        yield server
    finally:
        server.stop()
