"""A real MongoDB wire-protocol server for the tests: SecantusDB run as a separate process,
launched with the embedded mode's own arguments and signalled as it is
(``tracos_sync.local_server``), waited for and stopped as every test server is
(tests/support/process.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process import ServerProcess, start_on_a_port
from tracos_sync import local_server
from tracos_sync.local_server import free_port

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
    running: ServerProcess | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="secantus-")))
    started_once: bool = False

    @property
    def uri(self) -> str:
        return local_server.uri_of(self.port)

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 60.0) -> Server:
        """Start and wait until it listens; a port taken by someone else is traded
        for another on the first start only (tests/support/process.py)."""
        start_on_a_port(
            lambda: self._start(timeout), self._trade_port, may_trade=not self.started_once
        )
        self.started_once = True
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.running is not None:
            self.running.kill()

    def stop(self) -> None:
        """SIGTERM to its main thread (``local_server.terminate``), knocking until it ends (it
        notices a stop at its next connection, as ``local_server.stop`` does), SIGKILL if slow."""
        if self.running is not None:
            self.running.stop(local_server.STOP_TIMEOUT, send=self._send, knock=self._knock)

    def _start(self, timeout: float) -> None:
        log_start = self.log.stat().st_size if self.log.exists() else 0
        # Launched as the embedded mode launches it (the same arguments); waited for and stopped
        # as every test server is.
        process = local_server.spawn(
            server_binary(),
            self.port,
            str(self.storage) if self.storage else ":memory:",
            self.log,
            test_commands=self.test_commands,
            log_level="ERROR",
        )
        running = self.running = ServerProcess("SecantusDB", process, self.log, log_start)
        running.wait_until_ready(lambda: running.listens_on(self.port), timeout, "in use")

    def _trade_port(self) -> None:
        self.port = free_port()

    def _send(self, sig: int) -> None:
        assert self.running is not None
        if sig == signal.SIGTERM:
            local_server.terminate(self.running.pid)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.running.pid, sig)

    def _knock(self) -> None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.05):
            pass
