"""A local MongoDB-compatible server for trying the service without Docker.

SecantusDB (GPL-2.0) is run as a separate process and never imported, so that its licence stays
apart from ours. It is found as ``SECANTUSD_BIN``, on ``PATH``, or in the tool environment the
Makefile creates (``.tools/secantusdb``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from tracos_sync.domain.errors import ConfigurationError, FatalError

log = structlog.get_logger("tracos_sync.embedded")
BINARY = "secantusd-py"
START_TIMEOUT = 60.0


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
async def embedded_server(data_dir: Path) -> AsyncIterator[str]:
    """Start the server on a free loopback port with its data in ``data_dir``; yield its URI."""
    port = free_port()
    log_path = data_dir.parent / "secantusd.log"
    process = await asyncio.to_thread(_spawn, find_server_binary(), data_dir, port, log_path)
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        await _wait_until_ready(uri, process, log_path)
        log.info("embedded.started", port=port, data=str(data_dir), pid=process.pid)
        yield uri
    finally:
        _stop(process)
        log.info("embedded.stopped", port=port)


def _spawn(binary: str, data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
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


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
