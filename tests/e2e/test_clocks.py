"""SPEC §8 "Clocks disagree": a client record dated beyond now + CLIENT_CLOCK_SKEW_SECONDS is
refused alone in every connector; a clock stepped back never quarantines what was applied."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, iso, write_json
from tests.conftest import Env, Result
from tests.server import ROOT
from tracos_sync.connectors.client_erp_http.fake_server import FakeErpState, fake_erp

HOUR = 3600.0


def shifted(env: Env, seconds: float, *args: str, **overrides: str) -> Result:
    """The CLI on a host whose clock is ``seconds`` off (negative: behind)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "shifted_clock.py"), str(seconds), *args],
        cwd=env.root,
        env=env.environ(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def rejected_reasons(env: Env) -> str:
    return "".join(p.read_text() for p in env.rejected.rglob("*") if p.is_file())


def test_a_folder_record_dated_centuries_ahead_is_refused_alone(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1, lastUpdateDate="2205-05-01T12:00:00Z"))
    write_json(env.inbound / "2.json", client_record(2))
    ahead = datetime.now(UTC) + timedelta(minutes=2)  # within the allowance: applied
    write_json(env.inbound / "3.json", client_record(3, lastUpdateDate=iso(ahead)))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["inserted"], counts["rejected"]) == (2, 1), result.output
    assert env.collection.count_documents({"number": 1}) == 0
    assert "in the future" in rejected_reasons(env)
    # A later, sane change of order 1 is not blocked by the typo'd one.
    write_json(env.inbound / "1b.json", client_record(1, lastUpdateDate="2024-06-01T00:00:00Z"))
    again = env.cli("inbound")
    assert again.code == 0 and again.counts()["inserted"] == 1, again.output


def test_the_allowance_is_a_setting_of_every_connector(env: Env) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=2)
    write_json(env.inbound / "1.json", client_record(1, lastUpdateDate=iso(ahead)))
    result = env.cli("inbound", CLIENT_CLOCK_SKEW_SECONDS="30")
    assert result.code == 0, result.output
    assert result.counts()["rejected"] == 1, result.output


def test_a_folder_record_applied_before_the_clock_stepped_back_is_stale(env: Env) -> None:
    recent = datetime.now(UTC) - timedelta(minutes=1)
    write_json(env.inbound / "7.json", client_record(7, lastUpdateDate=iso(recent)))
    first = env.cli("inbound")
    assert first.code == 0 and first.counts()["inserted"] == 1, first.output
    # The host's clock steps back an hour; the same record is sent again, and a new one.
    write_json(env.inbound / "7.json", client_record(7, lastUpdateDate=iso(recent)))
    write_json(env.inbound / "8.json", client_record(8, lastUpdateDate=iso(recent)))
    behind = shifted(env, -HOUR, "inbound")
    assert behind.code == 0, behind.output
    counts = behind.counts()
    # Applied already: stale, not quarantined. Never applied: ahead of this clock, refused.
    assert (counts["stale"], counts["rejected"], counts["inserted"]) == (1, 1, 0), behind.output
    assert "orderNo 8" in rejected_reasons(env) and "orderNo 7" not in rejected_reasons(env)


@pytest.fixture
def erp(env: Env) -> Iterator[FakeErpState]:
    with fake_erp() as (url, state):
        env.extra.update(CLIENT_CONNECTOR="http", CLIENT_API_URL=url, CLIENT_API_PAGE_SIZE="2")
        yield state


def test_http_clock_stepped_back_neither_replays_nor_dead_letters(
    env: Env, erp: FakeErpState, mongo: MongoClient[dict[str, Any]]
) -> None:
    now = datetime.now(UTC)
    for n in range(1, 6):
        erp.put(client_record(n, lastUpdateDate=iso(now - timedelta(minutes=10 - n))))
    first = env.cli("inbound")
    assert first.code == 0 and first.counts()["inserted"] == 5, first.output
    state = mongo[env.database]["client_sync_state"]
    [stored] = state.find()
    for _ in range(2):  # and the run after it
        behind = shifted(env, -HOUR, "inbound")
        assert behind.code == 0, behind.output
        counts = behind.counts()
        assert (counts["rejected"], counts["inserted"], counts["updated"]) == (0, 0, 0), (
            behind.output
        )
        assert "http.watermark_reset" not in behind.output
    assert mongo[env.database]["client_dead_letters"].count_documents({}) == 0
    [after] = state.find()
    assert after["watermark"] == stored["watermark"], "the watermark never goes back"
    # A real change made meanwhile is refused while this clock is behind, then taken.
    erp.put(client_record(2, summary="changed", lastUpdateDate=iso(datetime.now(UTC))))
    behind = shifted(env, -HOUR, "inbound")
    assert behind.code == 0 and behind.counts()["rejected"] == 1, behind.output
    caught_up = env.cli("inbound")
    assert caught_up.code == 0 and caught_up.counts()["updated"] == 1, caught_up.output
