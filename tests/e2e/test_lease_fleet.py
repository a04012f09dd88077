"""Replicas whose integrations files differ (issue 25, F2): an integration only some replicas
know is still served, the replicas say they disagree, and ``check`` FAILs on it, and on a lease
nobody has taken while replicas have been live for over twice LEASE_SECONDS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations
from tests.support.watching import stop, wait_until

Doc = dict[str, Any]
TTL = 2.0  # heartbeats every 0.67 s: a loaded machine does not drop one
FAST = {"LEASES": "true", "LEASE_SECONDS": str(TTL), "WATCH_INTERVAL": "0.2"}


def file(env: Env, label: str, names: list[str]) -> Path:
    return write_integrations(
        env.root / f"{label}.toml",
        [
            {"name": name, "tracos": {"collection": name}, "settings": folders(env.root, name)}
            for name in names
        ],
    )


def held(mongo: MongoClient[Doc], env: Env) -> set[str]:
    now = datetime.now(UTC)
    leases = mongo[env.database]["sync_leases"].find({"kind": "integration"})
    return {
        doc["name"]
        for doc in leases
        if doc.get("holder") and doc["expiresAt"].replace(tzinfo=UTC) > now
    }


def test_integrations_files_that_differ_are_served_said_and_fail_check(
    env: Env, mongo: MongoClient[Doc]
) -> None:
    full = file(env, "full", ["c0", "c1", "c2", "c3"])
    short = file(env, "short", ["c0"])
    b = env.popen("--integrations", str(short), "watch", **FAST)
    a = None
    try:
        wait_until(lambda: held(mongo, env) == {"c0"}, b, 15)
        replicas = mongo[env.database]["sync_leases"]
        wait_until(
            lambda: any(
                doc["startedAt"].replace(tzinfo=UTC)
                < datetime.now(UTC) - timedelta(seconds=2.5 * TTL)
                for doc in replicas.find({"kind": "replica"})
            ),
            b,
            15,
        )
        alone = env.cli("--integrations", str(full), "check", **FAST)
        assert alone.code != 0, alone.output
        assert "c1: lease" in alone.output and "no replica takes it" in alone.output
        a = env.popen("--integrations", str(full), "watch", **FAST)
        wait_until(lambda: held(mongo, env) == {"c0", "c1", "c2", "c3"}, a, 15)
        both = env.cli("--integrations", str(full), "check", **FAST)
        assert both.code != 0, both.output
        assert "2 live" in both.output and "they disagree" in both.output, both.output
    finally:
        results = [stop(proc)[0] for proc in (a, b) if proc is not None]
    assert all(result.code == 0 for result in results)
    assert all("lease.replicas_disagree" in result.output for result in results), [
        r.output for r in results
    ]
