"""The local SecantusDB server as a process: find it, start it, wait for it, stop it. Shared by
the embedded mode and the tests, so both launch it the same way.

SecantusDB (GPL-2.0) is run as a separate process and never imported, so that its licence stays
apart from ours. It is found as ``SECANTUSD_BIN``, else in the tool environment the Makefile
creates (``.tools/secantusdb``: the current directory's or the project's), else on ``PATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from tracos_sync.domain.errors import ConfigurationError, FatalError

BINARY = "secantusd-py"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class PortTaken(FatalError):
    """The port chosen was taken by someone else between choosing and binding it."""


def _load_tgkill() -> Callable[[int, int, int], int] | None:
    try:
        function: Callable[[int, int, int], int] = ctypes.CDLL(None, use_errno=True).tgkill
    except (AttributeError, OSError):  # glibc < 2.30
        return None
    return function


_tgkill = _load_tgkill()


def find_server_binary() -> str:
    """``SECANTUSD_BIN`` when set (it must then be the server: a wrong one is a configuration
    error, not a reason to quietly run another); otherwise the first of :func:`server_places`."""
    named = os.environ.get("SECANTUSD_BIN", "").strip()
    if named:
        if _runnable(Path(named)):
            return named
        raise ConfigurationError(
            f"SECANTUSD_BIN: {named} is not an executable file; install the local server with "
            "`make tools` in the project, or unset SECANTUSD_BIN to look in the usual places"
        )
    places = server_places()
    for place in places:
        if place is not None and _runnable(place):
            return str(place)
    looked = "; ".join(str(place) if place else f"{BINARY} on PATH" for place in places)
    raise ConfigurationError(
        "MONGO_EMBEDDED: the local server was not found (looked at SECANTUSD_BIN, not set; "
        f"{looked}); install it with `make tools` in the project's checkout (or `pip install "
        "secantusdb==0.7.0b3` in another environment), or set SECANTUSD_BIN to its path"
    )


def server_places() -> list[Path | None]:
    """Where the local server may be, in order: the ``.tools`` of the current directory, of
    the checkout this package runs from, and of the project whose ``.venv`` runs this Python
    (so a command run elsewhere still finds the project's own); then ``PATH`` (``None`` where
    it has none)."""
    tool = Path(".tools/secantusdb/bin") / BINARY
    checkout = Path(__file__).resolve().parents[2]  # <checkout>/src/tracos_sync/local_server.py
    places: list[Path] = []
    for root in (Path.cwd(), checkout, Path(sys.prefix).parent):
        place = (root / tool).absolute()
        if place not in places:
            places.append(place)
    on_path = shutil.which(BINARY)
    return [*places, Path(on_path) if on_path else None]


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def spawn(
    binary: str,
    port: int,
    storage: str,
    log_path: Path,
    *,
    test_commands: bool = False,
    log_level: str = "WARNING",
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start the server on loopback ``port`` with its data in ``storage`` (a folder, or
    ``:memory:``), its output appended to ``log_path``, in a session of its own."""
    # An explicit (empty) config: otherwise a stray ./secantusd.toml would be read.
    config = log_path.parent / "secantusd.toml"
    config.touch()
    args = [binary, "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage]
    args += ["--config", str(config), "--log-level", log_level]
    if test_commands:
        args.append("--enable-test-commands")
    with open(log_path, "ab") as server_log:
        return subprocess.Popen(
            args,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=pass_fds,
        )


def uri_of(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def log_tail(log_path: Path, lines: int = 3) -> str:
    return " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-lines:])


async def wait_until_ready(
    uri: str, process: subprocess.Popen[bytes], log_path: Path, within: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + within
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        while True:
            if process.poll() is not None:
                said = log_tail(log_path)
                if "in use" in said.lower():
                    raise PortTaken(f"local server could not bind its port: {said}")
                raise FatalError(
                    f"local server exited at start (code {process.returncode}): {said}"
                )
            try:
                await client.admin.command("ping")
                return
            except PyMongoError:
                if time.monotonic() > deadline:
                    raise FatalError(f"local server did not answer within {within:g}s") from None
                await asyncio.sleep(0.2)
    finally:
        await client.close()


def terminate(pid: int) -> None:
    """SIGTERM to the server's main thread. Sent to the process, the kernel may hand it to any
    thread; then the main thread, asleep in an untimed ``Event.wait``, never runs the Python
    handler (measured: 2 stops in 12 waited out the whole timeout and were SIGKILLed)."""
    try:
        if _tgkill is None or _tgkill(pid, pid, signal.SIGTERM) != 0:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def stop(process: subprocess.Popen[bytes], port: int) -> None:
    """SIGTERM, then wait for the process to end: no fixed sleep. SecantusDB's accept loop only
    sees the stop request when a connection arrives (closing a listening socket does not wake a
    blocked ``accept``; it would otherwise wait out a 2 s join), so knock until it has exited."""
    if process.poll() is not None:
        return
    terminate(process.pid)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.05):
            pass
        try:
            process.wait(timeout=0.05)
            return
        except subprocess.TimeoutExpired:
            continue
    process.kill()
    process.wait()
