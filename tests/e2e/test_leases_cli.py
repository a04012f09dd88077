"""Leases seen from the command line: ``check`` and the metrics say which replica holds which
integration and since when; a one-shot ``run`` leaves an integration a replica holds to it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, write_json
from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations
from tests.support.watching import metrics_or_empty, stop, wait_until, watch_with_metrics

Doc = dict[str, Any]


@pytest.fixture
def two(env: Env) -> Path:
    return write_integrations(
        env.root / "integrations.toml",
        [
            {"name": name, "tracos": {"collection": name}, "settings": folders(env.root, name)}
            for name in ("c0", "c1")
        ],
    )


def test_check_and_metrics_say_which_replica_holds_which_integration_since_when(
    env: Env, two: Path
) -> None:
    proc, port = watch_with_metrics(
        env, "--integrations", str(two), LEASES="true", LEASE_SECONDS="3"
    )
    try:
        held = re.compile(r'tracos_sync_lease_held\{integration="c1",replica="([^"]+)"\} 1\.0')
        both = re.compile(r'tracos_sync_lease_held\{integration="c[01]",[^}]*\} 1\.0')
        # Both: the leases are taken one after the other, c1 may come first.
        wait_until(lambda: len(both.findall(metrics_or_empty(port))) == 2, proc, 30)
        page = metrics_or_empty(port)
        match = held.search(page)
        assert match is not None
        replica = match.group(1)
        assert f":{proc.pid}:" in replica
        labels = f'integration="c0",replica="{replica}"'
        assert f"tracos_sync_lease_since_seconds{{{labels}}} 1." in page, page
        checked = env.cli("--integrations", str(two), "check", LEASES="true")
        assert checked.code == 0, checked.output
        for name in ("c0", "c1"):
            assert re.search(
                rf"{name}: lease.*held by {re.escape(replica)} since \S+ \(epoch 1\)",
                checked.output,
            ), checked.output
        assert "replicas" in checked.output and "1 live" in checked.output
    finally:
        result, _ = stop(proc)
    assert result.code == 0
    given = [line for line in result.output.splitlines() if "lease.given_back" in line]
    assert len(given) == 2, result.output


def test_a_run_leaves_an_integration_a_replica_holds_and_serves_the_others(
    env: Env, two: Path, mongo: MongoClient[Doc]
) -> None:
    db = mongo[env.database]
    now = datetime.now(UTC)
    db["sync_leases"].insert_one(
        {
            "_id": "integration:c0",
            "kind": "integration",
            "name": "c0",
            "holder": "elsewhere:1:abc",
            "epoch": 4,
            "since": now,
            "expiresAt": now + timedelta(minutes=5),
        }
    )
    for name in ("c0", "c1"):
        write_json(env.root / name / "in" / "1.json", [client_record(7)])
    result = env.cli("--integrations", str(two), "run", LEASES="true")
    assert result.code == 0, result.output
    assert "lease.held_elsewhere" in result.output and "c0" in result.output
    assert (env.root / "c0" / "in" / "1.json").exists()  # left to the replica holding it
    assert db["c0"].count_documents({}) == 0
    assert db["c1"].find_one({"number": 7})["syncLease"]["holder"].startswith("run:")
    leases = {doc["name"]: doc for doc in db["sync_leases"].find({"kind": "integration"})}
    assert leases["c0"]["holder"] == "elsewhere:1:abc" and leases["c0"]["epoch"] == 4
    assert leases["c1"]["holder"] is None and leases["c1"]["epoch"] == 1  # given back


def test_the_leases_may_not_share_a_collection_with_an_integration(env: Env, two: Path) -> None:
    result = env.cli("--integrations", str(two), "check", LEASES="true", LEASE_COLLECTION="c1")
    assert result.code == 2
    assert "LEASE_COLLECTION: 'c1' is where integration 'c1' keeps its work orders" in result.output
