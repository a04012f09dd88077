"""A local MongoDB-compatible server for trying the service without Docker.

SecantusDB (GPL-2.0) is run as a separate process and never imported, so that its licence stays
apart from ours. It is found as ``SECANTUSD_BIN``, on ``PATH``, or in the tool environment the
Makefile creates (``.tools/secantusdb``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import structlog
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from tracos_sync.domain.errors import ConfigurationError, FatalError

log = structlog.get_logger("tracos_sync.embedded")
BINARY = "secantusd-py"
START_TIMEOUT = 60.0
# How long a second run waits for the one holding the local server (its data folder admits one
# server at a time) before saying so and giving up.
LOCK_WAIT_SECONDS = 60.0
STOP_TIMEOUT = 15.0


def _load_tgkill() -> Callable[[int, int, int], int] | None:
    try:
        function: Callable[[int, int, int], int] = ctypes.CDLL(None, use_errno=True).tgkill
    except (AttributeError, OSError):  # glibc < 2.30
        return None
    return function


_tgkill = _load_tgkill()


def find_server_binary() -> str:
    candidates = [
        os.environ.get("SECANTUSD_BIN"),
        shutil.which(BINARY),
        str(Path(".tools/secantusdb/bin") / BINARY),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigurationError(
        "MONGO_EMBEDDED: the local server was not found; install it apart from tracos-sync "
        "(`make tools`, or `pip install secantusdb==0.7.0b3` in another environment) "
        "or set SECANTUSD_BIN"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_server(
    data_dir: Path, wait_seconds: float = LOCK_WAIT_SECONDS
) -> AsyncIterator[str]:
    """Start the server on a free loopback port with its data in ``data_dir``; yield its URI.
    Runs that overlap take turns: the server's data folder admits one server at a time."""
    async with _server_lock(data_dir, wait_seconds) as lock_fd:
        port = free_port()
        log_path = data_dir.parent / "secantusd.log"
        binary = find_server_binary()
        process = await asyncio.to_thread(_spawn, binary, data_dir, port, log_path, lock_fd)
        os.pwrite(lock_fd, f"{os.getpid()} {process.pid} {port}".encode(), 0)
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        try:
            await _wait_until_ready(uri, process, log_path)
            log.info("embedded.started", port=port, data=str(data_dir), pid=process.pid)
            yield uri
        finally:
            await asyncio.to_thread(_stop, process, port)
            log.info("embedded.stopped", port=port)


@contextlib.asynccontextmanager
async def _server_lock(data_dir: Path, wait_seconds: float) -> AsyncIterator[int]:
    """Hold ``<data_dir>/../secantusd.lock`` while the server runs; wait, bounded and said once,
    for another run's. An ``flock``: the kernel releases it however the holders end, and the
    server inherits it, so a server left running by a killed run still holds its data."""
    lock_path = data_dir.parent / "secantusd.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        waiting = stopping = False
        while not _try_lock(fd):
            holder, server, port = _holders(fd)
            orphan = _orphan(holder, server, data_dir)
            if orphan and not stopping:
                stopping = True
                log.warning(
                    "embedded.orphan_stopped",
                    pid=server,
                    reason=f"a local server left running by a killed run (pid {holder})",
                )
            if orphan and server is not None and port is not None:
                await asyncio.to_thread(_stop_orphan, server, port)
            elif not waiting:
                waiting = True
                log.info(
                    "embedded.waiting",
                    reason=f"another tracos-sync run (pid {holder}) or its server holds the "
                    f"local server's data in {data_dir}; waiting up to {wait_seconds:g}s",
                )
            if time.monotonic() >= deadline:
                raise FatalError(
                    f"another tracos-sync run (pid {holder}) or its server holds the local "
                    f"server's data in {data_dir} ({lock_path}); try again when it ends"
                )
            await asyncio.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)  # completed with the server's pid and port
        yield fd
    finally:
        os.close(fd)


def _holders(fd: int) -> tuple[int | None, int | None, int | None]:
    """The run, server and port recorded in the lock file (``None`` where not recorded yet)."""
    fields = os.pread(fd, 64, 0).decode(errors="replace").split()
    numbers = [int(f) if f.isdigit() else None for f in fields[:3]]
    run, server, port = [*numbers, None, None, None][:3]
    return run, server, port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _orphan(run: int | None, server: int | None, data_dir: Path) -> bool:
    """Whether the lock is held only by a server whose run was killed (the server runs in its
    own session, so it outlives a SIGKILLed run): its run is gone, and the server process is
    ours, serving this data folder."""
    if run is None or server is None or _alive(run):
        return False
    try:
        args = Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(str(data_dir)) in args and any(BINARY.encode() in a for a in args)


def _stop_orphan(pid: int, port: int) -> None:
    """SIGTERM and a knock (see :func:`_stop`); repeated while its lock is held."""
    _terminate(pid)
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.05):
        pass


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _spawn(
    binary: str, data_dir: Path, port: int, log_path: Path, lock_fd: int
) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    # An explicit (empty) config: otherwise a stray ./secantusd.toml would be read.
    config = data_dir.parent / "secantusd.toml"
    config.touch()
    with open(log_path, "ab") as server_log:
        return subprocess.Popen(
            [
                binary,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(data_dir),
                "--config",
                str(config),
                "--log-level",
                "WARNING",
            ],
            stdout=server_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(lock_fd,),
        )


def _log_tail(log_path: Path, lines: int = 3) -> str:
    return " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-lines:])


async def _wait_until_ready(uri: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        while True:
            if process.poll() is not None:
                raise FatalError(
                    f"local server exited at start (code {process.returncode}): "
                    f"{_log_tail(log_path)}"
                )
            try:
                await client.admin.command("ping")
                return
            except PyMongoError:
                if time.monotonic() > deadline:
                    raise FatalError(
                        f"local server did not answer within {START_TIMEOUT:g}s"
                    ) from None
                await asyncio.sleep(0.2)
    finally:
        await client.close()


def _terminate(pid: int) -> None:
    """SIGTERM to the server's main thread. Sent to the process, the kernel may hand it to any
    thread; then the main thread, asleep in an untimed ``Event.wait``, never runs the Python
    handler (measured: 2 stops in 12 waited out the whole timeout and were SIGKILLed)."""
    try:
        if _tgkill is None or _tgkill(pid, pid, signal.SIGTERM) != 0:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _stop(process: subprocess.Popen[bytes], port: int) -> None:
    """SIGTERM, then wait for the process to end: no fixed sleep. SecantusDB's accept loop only
    sees the stop request when a connection arrives (closing a listening socket does not wake a
    blocked ``accept``; it would otherwise wait out a 2 s join), so knock until it has exited."""
    if process.poll() is not None:
        return
    _terminate(process.pid)
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
