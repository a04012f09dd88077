"""A real MongoDB wire-protocol server for the tests: SecantusDB run as a separate process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parents[1]


def server_binary() -> str:
    for candidate in (
        os.environ.get("SECANTUSD_BIN"),
        str(ROOT / ".tools/secantusdb/bin/secantusd-py"),
        shutil.which("secantusd-py"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("secantusd-py not found: run `make tools` or set SECANTUSD_BIN")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One server process. ``storage`` ``None`` means in memory; a path survives restarts."""

    storage: Path | None = None
    test_commands: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="secantus-")))

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout: float = 60.0) -> Server:
        config = self.workdir / "secantusd.toml"
        config.touch()
        args = [
            server_binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage) if self.storage else ":memory:",
            "--config",
            str(config),
            "--log-level",
            "ERROR",
        ]
        if self.test_commands:
            args.append("--enable-test-commands")
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        with MongoClient(self.uri, serverSelectionTimeoutMS=300) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited: {(self.workdir / 'server.log').read_text()}"
                    )
                try:
                    client.admin.command("ping")
                    return self
                except PyMongoError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
