"""The embedded mode: the local server (``local_server``) for the length of one command, its data
folder held by one command at a time."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from tracos_sync.domain.errors import FatalError
from tracos_sync.local_server import (
    BINARY,
    PortTaken,
    find_server_binary,
    free_port,
    spawn,
    stop,
    terminate,
    uri_of,
    wait_until_ready,
)

log = structlog.get_logger("tracos_sync.embedded")
MEMORY = ":memory:"  # the server's storage path for data kept in memory only
PORT_ATTEMPTS = 3
# How long a second run waits for the one holding the local server (its data folder admits one
# server at a time) before saying so and giving up.
LOCK_WAIT_SECONDS = 60.0


@contextlib.asynccontextmanager
async def embedded_server(
    data_dir: Path, wait_seconds: float = LOCK_WAIT_SECONDS, binary: str | None = None
) -> AsyncIterator[str]:
    """Start the server (``binary``, or the one found) on a free loopback port with its data in
    ``data_dir``; yield its URI. Runs that overlap take turns: the server's data folder admits
    one server at a time."""
    binary = binary or find_server_binary()  # before the lock: a missing one writes nothing
    async with _server_lock(data_dir, wait_seconds) as lock_fd:
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        async with _running(binary, str(data_dir), data_dir.parent, lock_fd) as uri:
            yield uri


@contextlib.asynccontextmanager
async def memory_server(binary: str | None = None) -> AsyncIterator[str]:
    """The server with its data in memory (and its log in a temporary folder): for a dry run or
    ``check`` where there is no database yet, which must create nothing, not even an empty one
    (an empty database made by ``check`` in the wrong directory would look ready)."""
    binary = binary or find_server_binary()
    with tempfile.TemporaryDirectory(prefix="tracos-sync-memory-") as scratch:
        async with _running(binary, MEMORY, Path(scratch), None) as uri:
            yield uri


@contextlib.asynccontextmanager
async def _running(
    binary: str, storage: str, beside: Path, lock_fd: int | None
) -> AsyncIterator[str]:
    process, port = await _start(binary, storage, beside, lock_fd)
    try:
        log.info("embedded.started", port=port, data=storage, pid=process.pid)
        yield uri_of(port)
    finally:
        await asyncio.to_thread(stop, process, port)
        log.info("embedded.stopped", port=port)


async def _start(
    binary: str, storage: str, beside: Path, lock_fd: int | None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start and wait for the server (its log and configuration in ``beside``); a port taken
    between choosing and binding it (another program got there first) is chosen again."""
    log_path = beside / "secantusd.log"
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        held = () if lock_fd is None else (lock_fd,)
        process = await asyncio.to_thread(spawn, binary, port, storage, log_path, pass_fds=held)
        if lock_fd is not None:
            os.pwrite(lock_fd, f"{os.getpid()} {process.pid} {port}".encode(), 0)
        try:
            await wait_until_ready(uri_of(port), process, log_path)
            return process, port
        except PortTaken:
            await asyncio.to_thread(stop, process, port)
            if attempt == PORT_ATTEMPTS - 1:
                raise
        except BaseException:
            await asyncio.to_thread(stop, process, port)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


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
    terminate(pid)
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.05):
        pass


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
