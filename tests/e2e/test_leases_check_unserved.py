"""``check`` with leases when no replica is live (the fixes' hostile pass): a replica holding
every lease, frozen past LEASE_SECONDS, makes ``check`` FAIL saying nothing is served and which
replica stopped renewing; replicas stopped cleanly FAIL too; before any replica ever started (a
first deployment) it is a WARN, exit 0; leases held by one-shot runs alone FAIL (no replica
serves the rest). Free leases beyond a few share one line."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations
from tests.support.watching import stop, wait_until

Doc = dict[str, Any]
TTL = 1.0
FAST = {"LEASES": "true", "LEASE_SECONDS": str(TTL), "WATCH_INTERVAL": "0.2"}
NAMES = [f"c{n}" for n in range(8)]  # more than check lists one by one


def eight(env: Env) -> Path:
    return write_integrations(
        env.root / "integrations.toml",
        [
            {"name": name, "tracos": {"collection": name}, "settings": folders(env.root, name)}
            for name in NAMES
        ],
    )


def leases(mongo: MongoClient[Doc], env: Env) -> list[Doc]:
    return list(mongo[env.database]["sync_leases"].find({"kind": "integration"}))


def held(mongo: MongoClient[Doc], env: Env) -> set[str]:
    now = datetime.now(UTC)
    return {
        doc["name"]
        for doc in leases(mongo, env)
        if doc.get("holder") and doc["expiresAt"].replace(tzinfo=UTC) > now
    }


def lines(output: str, start: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(start)]


def test_check_fails_when_the_replica_holding_every_lease_froze_and_when_it_stopped(
    env: Env, mongo: MongoClient[Doc]
) -> None:
    file = eight(env)
    args = ("--integrations", str(file))
    proc = env.popen(*args, "watch", **FAST)
    try:
        wait_until(lambda: held(mongo, env) == set(NAMES), proc, 20)
        (holder,) = {doc["holder"] for doc in leases(mongo, env)}
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: not held(mongo, env), proc, 20)
            # Its heartbeat lasts as long as its leases, renewed at the same time.
            replicas = mongo[env.database]["sync_leases"]
            wait_until(
                lambda: all(
                    doc["expiresAt"].replace(tzinfo=UTC) <= datetime.now(UTC)
                    for doc in replicas.find({"kind": "replica"})
                ),
                proc,
                20,
            )
            frozen = env.cli(*args, "check", **FAST)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert frozen.code == 1, frozen.output
        (said,) = lines(frozen.output, "FAIL  replicas")
        assert "0 live" in said and "nothing is served" in said, said
        assert "8 leases expired until " in said, said
        assert f"without being given back by {holder}: they died or froze" in said, said
        (free,) = lines(frozen.output, "ok    leases")
        assert f"8 integrations free (8 expired, last held by {holder})" in free, free
        assert "the next replica's round takes them" in free, free
        assert not [line for line in frozen.output.splitlines() if ": lease " in line]
        wait_until(lambda: held(mongo, env) == set(NAMES), proc, 20)  # woken, it takes them
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    stopped = env.cli(*args, "check", **FAST)
    assert stopped.code == 1, stopped.output
    (said,) = lines(stopped.output, "FAIL  replicas")
    assert "0 live" in said and "every lease was given back" in said, said
    (free,) = lines(stopped.output, "ok    leases")
    assert "8 integrations free (8 given back)" in free, free


def test_check_before_any_replica_started_warns_and_exits_0(env: Env) -> None:
    checked = env.cli("--integrations", str(eight(env)), "check", **FAST)
    assert checked.code == 0, checked.output
    (said,) = lines(checked.output, "WARN  replicas")
    assert "0 live" in said and "no replica has ever taken a lease here" in said, said
    (free,) = lines(checked.output, "ok    leases")
    assert "8 integrations free (8 never taken yet): the next replica's round takes them" in (
        free
    ), free
    assert not [line for line in checked.output.splitlines() if ": lease " in line]


def test_check_fails_when_only_a_one_shot_run_holds_leases(
    env: Env, mongo: MongoClient[Doc]
) -> None:
    now = datetime.now(UTC)
    mongo[env.database]["sync_leases"].insert_one(
        {
            "_id": "integration:c0",
            "kind": "integration",
            "name": "c0",
            "holder": "run:cron:1:abc",
            "epoch": 1,
            "since": now,
            "expiresAt": now + timedelta(minutes=5),
        }
    )
    checked = env.cli("--integrations", str(eight(env)), "check", **FAST)
    assert checked.code == 1, checked.output
    (said,) = lines(checked.output, "FAIL  replicas")
    assert "0 live" in said and "1 lease held by run:cron:1:abc (one-shot runs" in said, said
    assert "c0: lease" in checked.output and "held by run:cron:1:abc" in checked.output
    (free,) = lines(checked.output, "ok    leases")
    assert "7 integrations free (7 never taken yet)" in free, free
