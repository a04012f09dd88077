"""Replicas sharing integrations through leases, as real processes on one server, under a steady
load of client files and TracOS edits: one replica killed, one frozen past its lease and woken,
one started. Checked from what was written (the fenced writes' stamps, the leases, the work
orders and files), not from logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from tests.builders import client_record, iso, tracos_doc, write_json
from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations

INTEGRATIONS = 6
TTL = 2.0
Doc = dict[str, Any]


def names() -> list[str]:
    return [f"c{i}" for i in range(INTEGRATIONS)]


@dataclass
class Load:
    """Client files into every integration's inbound folder and TracOS edits into its
    collection, a few a second each, until stopped."""

    env: Env
    db: Database[Doc]
    files: Counter[str] = field(default_factory=Counter)
    edits: Counter[str] = field(default_factory=Counter)
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        k = 0
        while not self.stopped.is_set():
            k += 1
            for i, name in enumerate(names()):
                number = 1_000_000 * (i + 1) + k
                inbound = self.env.root / name / "in"
                updated = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
                record = client_record(number, lastUpdateDate=iso(updated))
                tmp = write_json(inbound / f".{k}.tmp", [record])
                os.rename(tmp, inbound / f"{k}.json")
                self.files[name] += 1
                self.db[name].insert_one(tracos_doc(500_000 + k, isSynced=False))
                self.edits[name] += 1
            time.sleep(0.1)


@pytest.fixture
def world(env: Env, mongo: MongoClient[Doc]) -> Iterator[tuple[Env, Path, Load]]:
    path = write_integrations(
        env.root / "integrations.toml",
        [
            {"name": name, "tracos": {"collection": name}, "settings": folders(env.root, name)}
            for name in names()
        ],
    )
    for name in names():
        (env.root / name / "in").mkdir(parents=True)
    load = Load(env, mongo[env.database])
    yield env, path, load
    load.stopped.set()


def replica(env: Env, path: Path) -> subprocess.Popen[str]:
    return env.popen(
        "--integrations",
        str(path),
        "watch",
        LEASES="true",
        LEASE_SECONDS=str(TTL),
        WATCH_INTERVAL="0.2",
        BATCH_SIZE="20",
        LOG_FORMAT="json",
    )


def leases(db: Database[Doc]) -> dict[str, Doc]:
    return {doc["name"]: doc for doc in db["sync_leases"].find({"kind": "integration"})}


def holders(db: Database[Doc]) -> dict[str, str]:
    """Integration -> holder, of the leases held now (by the server's clock)."""
    now = db.command("hello")["localTime"].replace(tzinfo=UTC)
    return {
        name: doc["holder"]
        for name, doc in leases(db).items()
        if doc.get("holder") and doc["expiresAt"] > now
    }


def replica_of(db: Database[Doc], proc: subprocess.Popen[str]) -> str:
    pid = f":{proc.pid}:"
    found = {h for h in holders(db).values() if pid in h}
    found |= {d["name"] for d in db["sync_leases"].find({"kind": "replica"}) if pid in d["name"]}
    assert len(found) == 1, found
    return found.pop()


def until(
    condition: Any,
    limit: float,
    what: str,
    db: Database[Doc] | None = None,
    procs: tuple[subprocess.Popen[str], ...] = (),
) -> float:
    """Seconds until ``condition``; past ``limit``, fails saying the leases and heartbeats, and
    the end of what ``procs`` logged (they are stopped)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start >= limit:
            state = list(db["sync_leases"].find()) if db is not None else ""
            said = []
            for proc in procs:
                proc.kill()
                out, err = proc.communicate(timeout=10)
                said.append(f"pid {proc.pid}:\n" + "\n".join((out + err).splitlines()[-15:]))
            pytest.fail(f"not within {limit} s: {what}\n{state}\n" + "\n".join(said))
        time.sleep(0.05)
    return time.monotonic() - start


def stamped(db: Database[Doc]) -> list[tuple[str, Any, Doc]]:
    """Every document a replica wrote on an integration's behalf, with its stamp."""
    found = []
    for collection in [*names(), "client_sync_state", "client_dead_letters"]:
        for doc in db[collection].find({"syncLease": {"$exists": True}}):
            found.append((collection, doc["_id"], doc))
    return found


@pytest.mark.slow
def test_replicas_share_take_over_and_fence_out_a_frozen_one(
    world: tuple[Env, Path, Load], mongo: MongoClient[Doc]
) -> None:
    env, path, load = world
    db = mongo[env.database]
    procs = [replica(env, path) for _ in range(3)]
    loader = threading.Thread(target=load.run, daemon=True)
    try:
        # Shared: every integration held, by all three.
        until(
            lambda: len(set(holders(db).values())) == 3 and len(holders(db)) == INTEGRATIONS,
            30,
            "three replicas holding every integration",
        )
        loader.start()
        killed, frozen = procs[0], procs[1]
        killed_name, frozen_name = replica_of(db, killed), replica_of(db, frozen)
        # SIGKILL: its integrations are taken over within 2 x TTL.
        of_killed = {n for n, h in holders(db).items() if h == killed_name}
        killed.kill()
        taken = until(
            lambda: (
                not of_killed & {n for n, h in holders(db).items() if h == killed_name}
                and of_killed <= set(holders(db))
            ),
            10,
            "take-over after a kill",
        )
        assert taken <= 2 * TTL, taken
        # SIGSTOP past its lease: its integrations are taken over; woken, it writes nothing stale.
        of_frozen = {n for n, h in holders(db).items() if h == frozen_name}
        frozen_epochs = {n: leases(db)[n]["epoch"] for n in of_frozen}
        # Frozen with work in hand: a burst of TracOS edits, going out 20 at a time.
        target = sorted(of_frozen)[0]
        db[target].insert_many([tracos_doc(900_000 + j, isSynced=False) for j in range(300)])
        load.edits[target] += 300
        out = env.root / target / "out"
        until(lambda: any(out.glob("9*.json")), 10, "the burst going out")
        os.kill(frozen.pid, signal.SIGSTOP)
        until(
            lambda: (
                of_frozen <= set(holders(db))
                and not of_frozen & {n for n, h in holders(db).items() if h == frozen_name}
            ),
            10,
            "take-over of a frozen one",
        )
        before = {(c, i): d for c, i, d in stamped(db)}
        os.kill(frozen.pid, signal.SIGCONT)
        # A new replica: it gets its share.
        procs.append(newcomer := replica(env, path))
        until(
            lambda: (
                len(set(holders(db).values())) == 3
                and len(holders(db)) == INTEGRATIONS
                and replica_of(db, newcomer) in holders(db).values()
            ),
            20,
            "the newcomer's share",
            db,
            (newcomer, frozen),
        )
        time.sleep(TTL)  # the load goes on under the new sharing
    finally:
        load.stopped.set()
        if loader.is_alive():
            loader.join()
    outputs = settle_and_stop(env, db, procs[1:])
    # The woken replica said for each integration it lost that it lost it, and no sweep of any
    # replica failed (a give-back lets the batch in hand finish under the lease).
    lost = [e for e in outputs[frozen.pid] if e["event"] == "lease.lost"]
    assert of_frozen <= {e["integration"] for e in lost}, lost
    failed = [e for lines in outputs.values() for e in lines if e.get("status") == "failed"]
    assert not failed, failed
    assert not holders(db)
    assert_nothing_stale(db, before, frozen_name, frozen_epochs)
    # Nothing lost, nothing applied twice.
    for i, name in enumerate(names()):
        inbound = db[name].count_documents(
            {"number": {"$gte": 1_000_000 * (i + 1), "$lt": 1_000_000 * (i + 2)}}
        )
        assert inbound == load.files[name]
        processed = [p.name for p in (env.root / name / "in" / "processed").iterdir()]
        assert len(processed) == load.files[name] and not [p for p in processed if "~" in p]
        exported = list((env.root / name / "out").glob("*.json"))
        assert len(exported) == load.edits[name]


def settle_and_stop(
    env: Env, db: Database[Doc], procs: list[subprocess.Popen[str]]
) -> dict[int, list[Doc]]:
    """Until every file is taken and every edit exported; then SIGTERM: each replica gives its
    leases back and exits 0. Each one's log events, by pid."""
    until(
        lambda: all(not list((env.root / n / "in").glob("*.json")) for n in names()),
        30,
        "every client file taken",
    )
    until(
        lambda: all(db[n].count_documents({"isSynced": {"$ne": True}}) == 0 for n in names()),
        30,
        "every TracOS edit exported",
    )
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    outputs = {}
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        outputs[proc.pid] = [json.loads(line) for line in (out + err).splitlines()]
    return outputs


def assert_nothing_stale(
    db: Database[Doc],
    before: dict[tuple[str, Any], Doc],
    frozen_name: str,
    frozen_epochs: dict[str, int],
) -> None:
    """None of the woken replica's old-epoch documents changed or appeared after its lease was
    taken over; and every epoch of an integration has one holder."""
    per_epoch: dict[tuple[str, int], set[str]] = {}
    for collection, key, doc in stamped(db):
        lease = doc["syncLease"]
        per_epoch.setdefault((collection, lease["epoch"]), set()).add(lease["holder"])
        if lease["holder"] == frozen_name and lease["epoch"] <= frozen_epochs.get(collection, 0):
            assert before.get((collection, key)) == doc, (collection, key, doc)
    assert all(len(holders) == 1 for holders in per_epoch.values()), per_epoch
