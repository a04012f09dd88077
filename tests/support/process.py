"""The tests' server processes (SecantusDB, SAP's CAP, OpenSSH), handled one way: started in a
session of their own with their output appended to a log, waited for until ready within a
deadline (the log's tail in the error): ready once the process itself listens on its port and
answers there as it should, stopped with SIGTERM then SIGKILL, always reaped. A port
taken by someone else between choosing it and the server binding it is traded for another, on a
first start only: a restart keeps its port, the clients know it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PortTaken", "ServerProcess", "greets", "start_on_a_port"]

# How often readiness is asked again, and how long a stop waits between knocks.
POLL_SECONDS = 0.02
TAIL_CHARS = 2000


class PortTaken(RuntimeError):
    """The server ended at start saying its port was in use."""


@dataclass
class ServerProcess:
    """One running server: its process, and its log from this start on (a restarted server
    appends to the same log)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    log_start: int = 0

    @classmethod
    def launch(cls, name: str, command: Sequence[str], log: Path, **popen: Any) -> ServerProcess:
        """``command`` started in a session of its own (a signal to the test's process group
        never reaches it), stdin closed, stdout and stderr appended to ``log``; ``popen`` are
        more of ``subprocess.Popen``'s options (cwd, env, user...)."""
        log_start = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
        return cls(name, process, log, log_start)

    @property
    def pid(self) -> int:
        return self.process.pid

    def listens_on(self, port: int) -> bool:
        """Whether this very process listens on ``port``: a probe of the port alone would also
        be answered by whoever took it first (then this server is about to end, unready)."""
        sockets = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()  # local address, state (0A: listening), inode
                    if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                        sockets.add(f"socket:[{fields[9]}]")
        with contextlib.suppress(OSError):
            for descriptor in Path(f"/proc/{self.pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(descriptor) in sockets:
                        return True
        return False

    def said(self) -> str:
        """The end of what the server logged since this start."""
        with contextlib.suppress(OSError), open(self.log, "rb") as log:
            log.seek(self.log_start)
            return log.read()[-TAIL_CHARS:].decode(errors="replace")
        return ""

    def wait_until_ready(
        self, ready: Callable[[], bool], within: float, port_taken: str
    ) -> ServerProcess:
        """Returns once ``ready()`` holds. The server ending first is ``PortTaken`` when its
        log says ``port_taken``, else an error with its log's tail; not ready within ``within``
        seconds, it is killed and that is an error too."""
        deadline = time.monotonic() + within
        while True:
            if self.process.poll() is not None:
                said = self.said()
                if port_taken in said:
                    raise PortTaken(f"{self.name}: {said}")
                raise RuntimeError(
                    f"{self.name} exited at start (code {self.process.returncode}); its log "
                    f"{self.log} ends:\n{said}"
                )
            if ready():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"{self.name} was not ready within {within:g}s; its log {self.log} ends:\n"
                    f"{self.said()}"
                )
            time.sleep(POLL_SECONDS)

    def stop(
        self,
        within: float = 10.0,
        *,
        send: Callable[[int], None] | None = None,
        knock: Callable[[], None] | None = None,
    ) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ``within`` seconds; reaped either
        way. ``send(signal)`` delivers a signal where this server needs it (by default to its
        process group); ``knock`` is called while waiting, for a server that only notices a
        stop at its next connection."""
        if self.process.poll() is not None:
            return
        (send or self._to_group)(signal.SIGTERM)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if knock is not None:
                knock()
            try:
                self.process.wait(timeout=POLL_SECONDS if knock else deadline - time.monotonic())
                return
            except subprocess.TimeoutExpired:
                continue
        self.kill(send=send)

    def kill(self, *, send: Callable[[int], None] | None = None) -> None:
        """SIGKILL (no clean shutdown, as in a crash), reaped."""
        if self.process.poll() is None:
            (send or self._to_group)(signal.SIGKILL)
        self.process.wait()

    def _to_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


def greets(port: int, greeting: bytes) -> Callable[[], bool]:
    """Whether a connection to loopback ``port`` is greeted with ``greeting`` first."""

    def probe() -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), 1.0) as connection,
        ):
            return connection.recv(len(greeting)).startswith(greeting)
        return False

    return probe


def start_on_a_port(
    start: Callable[[], None], trade_port: Callable[[], None], may_trade: bool
) -> None:
    """``start()``; while it raises ``PortTaken`` and ``may_trade``, ``trade_port()`` (choose
    another free port) and start again."""
    while True:
        try:
            start()
            return
        except PortTaken:
            if not may_trade:
                raise
            trade_port()
