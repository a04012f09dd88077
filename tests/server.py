"""A real MongoDB wire-protocol server for the tests: SecantusDB run as a separate process, started
and stopped by the same code as the embedded mode (``tracos_sync.local_server``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tracos_sync import local_server
from tracos_sync.local_server import PortTaken, free_port

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "Server", "free_port", "server_binary"]


def server_binary() -> str:
    os.environ.setdefault("SECANTUSD_BIN", str(ROOT / ".tools/secantusdb/bin/secantusd-py"))
    try:
        return local_server.find_server_binary()
    except Exception as exc:
        raise RuntimeError("secantusd-py not found: run `make tools` or set SECANTUSD_BIN") from exc


@dataclass
class Server:
    """One server process. ``storage`` ``None`` means in memory; a path survives restarts (on
    the same port)."""

    storage: Path | None = None
    test_commands: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="secantus-")))
    started_once: bool = False

    @property
    def uri(self) -> str:
        return local_server.uri_of(self.port)

    def start(self, timeout: float = 60.0) -> Server:
        while True:
            self.process = local_server.spawn(
                server_binary(),
                self.port,
                str(self.storage) if self.storage else ":memory:",
                self.workdir / "server.log",
                test_commands=self.test_commands,
                log_level="ERROR",
            )
            try:
                asyncio.run(
                    local_server.wait_until_ready(
                        self.uri, self.process, self.workdir / "server.log", timeout
                    )
                )
            except PortTaken:
                local_server.stop(self.process, self.port)
                if self.started_once:  # a restart must keep its port: the clients know it
                    raise
                self.port = free_port()
                continue
            self.started_once = True
            return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            local_server.stop(self.process, self.port)
