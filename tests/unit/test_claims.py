"""Claim folders: owned by an flock, not by a pid; recovered by exactly one instance; kept alive
while their instance lives; recreated, loudly, when another host removed them."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tracos_sync.connectors.client_erp.files.claims import CLAIMS_FOLDER, ClaimFolder


@pytest.fixture
def inbound(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / CLAIMS_FOLDER).mkdir(parents=True)
    return folder


@pytest.fixture
def opened() -> Iterator[list[ClaimFolder]]:
    claims: list[ClaimFolder] = []
    yield claims
    for claim in claims:
        claim.close()


def open_claims(inbound: Path, opened: list[ClaimFolder], stale: float = 3600) -> ClaimFolder:
    claim = ClaimFolder(inbound, stale)
    claim.open()
    opened.append(claim)
    return claim


def dead_claim(inbound: Path, name: str, *files: str) -> Path:
    folder = inbound / CLAIMS_FOLDER / name
    folder.mkdir()
    for file in files:
        (folder / file).write_text(file)
    return folder


def host() -> str:
    return ClaimFolder(Path("."), 1)._host


def test_a_dead_claim_is_recovered_whatever_pid_is_alive(
    inbound: Path, opened: list[ClaimFolder]
) -> None:
    # pid 1 is always alive (in a container, it is every instance's pid): only the lock counts.
    dead = dead_claim(inbound, f"{host()}-1-deadbeef", "1.json", "2.json")
    mine = dead_claim(inbound, f"{host()}-{os.getpid()}-cafecafe", "3.json")
    open_claims(inbound, opened)
    assert sorted(p.name for p in inbound.glob("*.json")) == ["1.json", "2.json", "3.json"]
    assert not dead.exists() and not mine.exists()


def test_a_live_claim_is_left_alone(inbound: Path, opened: list[ClaimFolder]) -> None:
    live = open_claims(inbound, opened)
    (live.path / "1.json").write_text("being processed")
    open_claims(inbound, opened)
    assert (live.path / "1.json").exists()
    assert not list(inbound.glob("*.json"))


def test_a_claim_being_recovered_is_recovered_by_one_instance_only(
    inbound: Path, opened: list[ClaimFolder]
) -> None:
    dead = dead_claim(inbound, f"{host()}-1-deadbeef", "1.json")
    fd = os.open(dead, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another instance is recovering it right now
        open_claims(inbound, opened)
        assert (dead / "1.json").exists(), "not touched while another recoverer holds it"
    finally:
        os.close(fd)
    open_claims(inbound, opened)
    assert [p.name for p in inbound.glob("*.json")] == ["1.json"]


def test_another_hosts_claim_waits_until_stale(inbound: Path, opened: list[ClaimFolder]) -> None:
    other = dead_claim(inbound, "otherhost-1-deadbeef", "1.json")
    open_claims(inbound, opened, stale=60)
    assert (other / "1.json").exists(), "flock cannot see that host: wait for staleness"
    os.utime(other, (time.time() - 120, time.time() - 120))
    open_claims(inbound, opened, stale=60)
    assert [p.name for p in inbound.glob("*.json")] == ["1.json"]


def test_liveness_is_refreshed_so_other_hosts_never_take_an_idle_claim(
    inbound: Path, opened: list[ClaimFolder]
) -> None:
    idle = open_claims(inbound, opened, stale=60)
    old = time.time() - 3600
    os.utime(idle.path, (old, old))
    idle.ensure()  # what the heartbeat does every CLAIM_STALE_SECONDS/4, idle or not
    assert time.time() - idle.path.stat().st_mtime < 60


def test_heartbeat_runs_by_itself(inbound: Path, opened: list[ClaimFolder]) -> None:
    idle = open_claims(inbound, opened, stale=0.2)
    old = time.time() - 3600
    os.utime(idle.path, (old, old))
    deadline = time.monotonic() + 10
    while idle.path.stat().st_mtime < old + 1:
        assert time.monotonic() < deadline, "the heartbeat never touched the claim folder"
        time.sleep(0.01)


def test_a_vanished_claim_folder_is_recreated_loudly(
    inbound: Path, opened: list[ClaimFolder]
) -> None:
    claim = open_claims(inbound, opened)
    claim.path.rmdir()  # another host's run took it for abandoned
    with capture_logs() as logs:
        claim.ensure()
    assert claim.path.is_dir()
    assert [e["event"] for e in logs] == ["inbound.claim_folder_vanished"]
    assert logs[0]["log_level"] == "warning"
