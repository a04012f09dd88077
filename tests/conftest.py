from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from tests.server import Server
from tests.support.cap import CapServer, running_cap_server
from tests.support.environ import cli_environ
from tests.support.sshd import Sshd, running_sshd


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``slow`` tests first, the rest in their order: a long test left for the end keeps
    one worker busy while the other has nothing more to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = Server(test_commands=True).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def cap_server() -> Iterator[CapServer]:
    """SAP's CAP OData server (tests/support/cap.py), one per test process, started on first use."""
    with running_cap_server() as server:
        yield server


@pytest.fixture
def cap(cap_server: CapServer) -> CapServer:
    """The session's CAP server, with no orders."""
    cap_server.clear()
    return cap_server


@pytest.fixture
def own_cap() -> Iterator[CapServer]:
    """A CAP server of the test's own, to kill and restart (slower to start than ``cap``)."""
    with running_cap_server() as server:
        yield server


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    """Debian's OpenSSH server (tests/support/sshd.py) of this test alone: its own port, host
    key, authorized key and served folder; a test may kill it, restart it or change its key."""
    with running_sshd() as server:
        yield server


@pytest.fixture(scope="session")
def mongo(server: Server) -> Iterator[MongoClient[dict[str, Any]]]:
    with MongoClient(server.uri, tz_aware=True) as client:
        yield client


@dataclass
class Env:
    """One isolated world: its own database and folders, and a way to run the CLI in it."""

    root: Path
    uri: str
    database: str
    collection: Collection[dict[str, Any]]
    extra: dict[str, str]

    @property
    def inbound(self) -> Path:
        return self.root / "in"

    @property
    def outbound(self) -> Path:
        return self.root / "out"

    @property
    def processed(self) -> Path:
        return self.inbound / "processed"

    @property
    def rejected(self) -> Path:
        return self.inbound / "rejected"

    def environ(self, **overrides: str) -> dict[str, str]:
        settings = {"MONGO_COLLECTION": "workorders", **self.extra, **overrides}
        return cli_environ(self.uri, self.database, self.inbound, self.outbound, **settings)

    def cli(self, *args: str, timeout: float = 120, **overrides: str) -> Result:
        """Run ``python -m tracos_sync`` as a user would, in its own process."""
        proc = subprocess.run(
            [sys.executable, "-m", "tracos_sync", *args],
            cwd=self.root,
            env=self.environ(**overrides),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str, **overrides: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tracos_sync", *args],
            cwd=self.root,
            env=self.environ(**overrides),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def summary(self) -> dict[str, str]:
        """The key=value fields of the run's summary line."""
        lines = [line for line in self.output.splitlines() if "run.summary" in line]
        assert len(lines) == 1, f"expected one summary line, got {lines!r}\n{self.output}"
        fields = {}
        for token in lines[0].split():
            key, sep, value = token.partition("=")
            if sep:
                fields[key] = value
        return fields

    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.summary().items() if v.isdigit()}


@pytest.fixture
def env(tmp_path: Path, server: Server, mongo: MongoClient[dict[str, Any]]) -> Iterator[Env]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    world = Env(tmp_path, server.uri, database, mongo[database]["workorders"], {})
    yield world
    mongo.drop_database(database)


@contextlib.contextmanager
def failpoint(mongo: MongoClient[dict[str, Any]], times: int, **data: Any) -> Iterator[None]:
    """Arm the server's ``failCommand`` failpoint for the next ``times`` matching commands."""
    mongo.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data}
    )
    try:
        yield
    finally:
        mongo.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
