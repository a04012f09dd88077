"""Two replicas of one deployment on one database, one with another LEASE_COLLECTION (issue 25,
F1 of the lease-collection fixes): the second says so within one lease period, naming both
collections and that the operator must pick one (G3 of the second hostile pass: never
recommending either), serves nothing (no lease taken in its collection, no work order
written by it: nothing applied twice), a one-shot run set like it serves nothing either, and
``check`` FAILs on it from either side. The registry's collection is refused to anything else."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pymongo import MongoClient

from tests.builders import client_record, write_json
from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations
from tests.support.watching import stop, wait_until

Doc = dict[str, Any]
TTL = 2.0
FAST = {"LEASES": "true", "LEASE_SECONDS": str(TTL), "WATCH_INTERVAL": "0.2"}
NAMES = ["c0", "c1"]
PICK_ONE = (
    "differ in LEASE_COLLECTION (other_leases, sync_leases): pick the one you intend and set it "
    "on every replica"
)


def events(output: str) -> list[Doc]:
    lines = (line for line in output.splitlines() if line.startswith("{"))
    return [json.loads(line) for line in lines]


def test_a_replica_with_another_lease_collection_says_so_at_once_and_serves_nothing(
    env: Env, mongo: MongoClient[Doc]
) -> None:
    db = mongo[env.database]
    file = write_integrations(
        env.root / "integrations.toml",
        [
            {"name": name, "tracos": {"collection": name}, "settings": folders(env.root, name)}
            for name in NAMES
        ],
    )
    args = ("--integrations", str(file))
    a = env.popen(*args, "watch", **FAST)
    b = None
    try:
        leases = db["sync_leases"]
        wait_until(lambda: leases.count_documents({"kind": "integration"}) == 2, a, 20)
        b = env.popen(*args, "watch", LEASE_COLLECTION="other_leases", LOG_FORMAT="json", **FAST)
        registry = db["sync_replicas"]
        wait_until(lambda: registry.count_documents({"leases": "other_leases"}) == 1, b, 20)
        for name in NAMES:
            write_json(env.root / name / "in" / "1.json", [client_record(n) for n in (1, 2, 3)])
        wait_until(lambda: all(db[n].count_documents({}) == 3 for n in NAMES), a, 20)
        db["c0"].update_one({"number": 2}, {"$set": {"isSynced": False, "title": "edited"}})
        wait_until(lambda: db["c0"].find_one({"number": 2})["isSynced"] is True, a, 20)
        serving = {doc["holder"] for doc in leases.find({"kind": "integration"})}
        once = env.cli(*args, "run", LEASE_COLLECTION="other_leases", **FAST)  # cron, mis-set
        assert once.code == 2 and "lease.collection_conflict" in once.output, once.output
        exits = [line for line in once.output.splitlines() if "config.invalid" in line]
        assert exits and all(PICK_ONE in line for line in exits), once.output  # its own text
        for config in ({}, {"LEASE_COLLECTION": "other_leases"}):
            checked = env.cli(*args, "check", **FAST, **config)
            assert checked.code != 0, checked.output
            assert "lease collection" in checked.output, checked.output
            assert PICK_ONE in checked.output, checked.output
            assert "set LEASE_COLLECTION=" not in checked.output, checked.output
        # The waiting side's leases: no one takes them while the conflict lasts.
        assert "the next replica's round takes it" not in checked.output, checked.output
        assert "no replica of other_leases takes it while replicas of sync_leases" in (
            checked.output
        ), checked.output
    finally:
        second = stop(b)[0] if b is not None else None
        first = stop(a)[0]
    assert first.code == 0 and second is not None and second.code == 0, second
    said = events(second.output)
    started = next(e for e in said if e["event"] == "lease.replica")
    (conflict,) = [e for e in said if e["event"] == "lease.collection_conflict"]
    seconds = (
        datetime.fromisoformat(conflict["timestamp"]) - datetime.fromisoformat(started["timestamp"])
    ).total_seconds()
    assert seconds < TTL, f"said {seconds:.2f} s after its start"
    assert conflict["lease_collection"] == "other_leases"
    assert conflict["other_lease_collections"] == ["sync_leases"]
    assert PICK_ONE in conflict["reason"], conflict["reason"]
    assert not [e for e in said if e["event"] in ("lease.taken", "run.summary", "inbound.applied")]
    assert db["other_leases"].count_documents({"kind": "integration"}) == 0
    holders = {doc["syncLease"]["holder"] for n in NAMES for doc in db[n].find()}
    assert len(serving) == 1 and holders == serving, (holders, serving)
    assert "lease.collection_conflict" in first.output  # the serving side says it too


def test_the_registry_of_replicas_is_nobody_elses_collection(env: Env) -> None:
    own = write_integrations(
        env.root / "own.toml",
        [
            {
                "name": "c0",
                "tracos": {"collection": "sync_replicas"},
                "settings": folders(env.root, "c0"),
            }
        ],
    )
    taken = env.cli("--integrations", str(own), "check", LEASES="true")
    assert taken.code == 2 and "'sync_replicas' is the registry of replicas" in taken.output
    leases = env.cli("check", LEASES="true", LEASE_COLLECTION="sync_replicas")
    assert leases.code == 2 and "'sync_replicas' is the registry of replicas" in leases.output
