"""Replicas sharing integrations through leases, as real processes on one server: 3 replicas x 30
integrations (folders, and the HTTP fake ERP), under a steady load of client files, ERP records
and TracOS edits; one replica killed, one frozen past its lease and woken, one started. Checked
from what was written (the fenced writes' stamps, watched as the leases change hands; the leases;
the work orders, files and ERP records), not from logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from tests.builders import client_record, iso, tracos_doc, write_json
from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations
from tests.support.held_proxy import HeldProxy, held_proxy
from tracos_sync.connectors.client_erp_http.fake_server import FakeErpState, fake_erp

FOLDER_INTEGRATIONS = 20
HTTP_INTEGRATIONS = 10
TTL = 4.0
# One round of the load: a client file (or ERP record) and a TracOS edit for every integration,
# then this pause: about 50 of each a second in all, a couple per integration.
ROUND_PAUSE = 1.0
# Numbers: client records of integration i from 1,000,000 x (i + 1); TracOS edits from 500,000;
# the burst the frozen replica holds in hand from 900,000.
EDITS = 500_000
BURST = 900_000
Doc = dict[str, Any]
Key = tuple[str, Any]  # (collection, _id)


def folder_names() -> list[str]:
    return [f"f{i:02}" for i in range(FOLDER_INTEGRATIONS)]


def http_names() -> list[str]:
    return [f"h{i:02}" for i in range(HTTP_INTEGRATIONS)]


def names() -> list[str]:
    return folder_names() + http_names()


def client_base(name: str) -> int:
    return 1_000_000 * (names().index(name) + 1)


def collections(name: str) -> tuple[str, str, str]:
    """An integration's own TracOS, state and dead-letter collections: every stamp in them is of
    its lease."""
    return name, f"{name}_state", f"{name}_letters"


@dataclass
class World:
    env: Env
    db: Database[Doc]
    integrations: Path
    erps: dict[str, FakeErpState]
    # Between the replica to freeze and the server: what it sent before it froze is held.
    proxy: HeldProxy

    def exported(self, name: str) -> set[int]:
        """The numbers of the TracOS edits that reached the client."""
        if name in self.erps:
            with self.erps[name].lock:
                return {int(body["orderNo"]) for body in self.erps[name].received}
        return {int(path.stem) for path in (self.env.root / name / "out").glob("*.json")}


@dataclass
class Load:
    """A client file into every folder integration's inbound folder, a record into every fake
    ERP, and a TracOS edit into every integration's collection, round after round, until
    stopped."""

    world: World
    files: Counter[str] = field(default_factory=Counter)
    edits: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        env, db = self.world.env, self.world.db
        k = 0
        while not self.stopped.is_set():
            k += 1
            updated = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
            for name in names():
                record = client_record(client_base(name) + k, lastUpdateDate=iso(updated))
                if name in self.world.erps:
                    self.world.erps[name].put(record)
                else:
                    inbound = env.root / name / "in"
                    tmp = write_json(inbound / f".{k}.tmp", [record])
                    os.rename(tmp, inbound / f"{k}.json")
                self.files[name] += 1
                db[name].insert_one(tracos_doc(EDITS + k, isSynced=False))
                self.edits[name].add(EDITS + k)
            self.stopped.wait(ROUND_PAUSE)


@dataclass
class Writes:
    """Watches the leases; each time an integration's lease goes to a new epoch, what its
    holders had written so far (every stamped document of its collections). Afterwards, a
    document stamped with an older epoch that differs from that copy, or was not there yet,
    was written by a replica that no longer held the lease."""

    db: Database[Doc]
    epochs: dict[str, int] = field(default_factory=dict)
    holders: dict[tuple[str, int], str] = field(default_factory=dict)
    copies: list[tuple[str, int, dict[Key, Doc]]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stopped.is_set():
            for name, lease in leases(self.db).items():
                epoch = int(lease["epoch"])
                self.holders.setdefault((name, epoch), lease["holder"] or "")
                if epoch > self.epochs.get(name, 0):
                    self.epochs[name] = epoch
                    self.copies.append((name, epoch, stamped(self.db, name)))
            self.stopped.wait(0.1)

    def assert_one_writer_at_a_time(self) -> None:
        for name, epoch, copy in self.copies:
            for key, doc in stamped(self.db, name).items():
                lease = doc["syncLease"]
                if lease["epoch"] < epoch:
                    assert copy.get(key) == doc, (
                        f"{key} written under epoch {lease['epoch']} by {lease['holder']} "
                        f"after epoch {epoch} of {name} was taken: {doc} (was {copy.get(key)})"
                    )
        for name in names():
            per_epoch: dict[int, set[str]] = defaultdict(set)
            for doc in stamped(self.db, name).values():
                per_epoch[doc["syncLease"]["epoch"]].add(doc["syncLease"]["holder"])
            for epoch, writers in per_epoch.items():
                assert len(writers) == 1, (name, epoch, writers)
                holder = self.holders.get((name, epoch))
                assert holder in (None, *writers), (name, epoch, holder, writers)


@pytest.fixture
def world(env: Env, mongo: MongoClient[Doc]) -> Iterator[World]:
    with contextlib.ExitStack() as stack:
        erps = {name: stack.enter_context(fake_erp()) for name in http_names()}
        tables: list[dict[str, Any]] = []
        for name in names():
            collection, state, letters = collections(name)
            tracos = {
                "collection": collection,
                "state_collection": state,
                "dead_letter_collection": letters,
            }
            if name in erps:
                settings = {"client_api_url": erps[name][0], "client_api_page_size": 50}
                tables.append(
                    {"name": name, "connector": "http", "tracos": tracos, "settings": settings}
                )
            else:
                (env.root / name / "in").mkdir(parents=True)
                tables.append({"name": name, "tracos": tracos, "settings": folders(env.root, name)})
        path = write_integrations(env.root / "integrations.toml", tables)
        server = urlsplit(env.uri)
        assert server.hostname is not None and server.port is not None
        proxy = stack.enter_context(held_proxy(server.hostname, server.port))
        yield World(env, mongo[env.database], path, {n: erps[n][1] for n in erps}, proxy)


@pytest.fixture
def started(world: World) -> Iterator[Callable[..., Replica]]:
    """Starts replicas; each one still running at the end is killed, whatever happened."""
    replicas: list[Replica] = []

    def start(proxied: bool = False) -> Replica:
        replicas.append(one := replica(world, proxied))
        return one

    yield start
    for one in replicas:
        if one.proc.poll() is None:
            one.proc.kill()
            one.proc.wait(timeout=10)


@dataclass
class Replica:
    """A ``watch`` replica, its output in a file (a pipe nobody reads would block it)."""

    proc: subprocess.Popen[str]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def events(self) -> list[Doc]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def tail(self) -> str:
        return f"pid {self.pid}:\n" + "\n".join(self.log.read_text().splitlines()[-15:])


def replica(world: World, proxied: bool = False) -> Replica:
    """``proxied``: it reaches the server through ``world.proxy``."""
    env = world.env
    log = env.root / f"replica-{len(list(env.root.glob('replica-*')))}.log"
    uri = env.uri.replace(f":{urlsplit(env.uri).port}/", f":{world.proxy.port}/")
    settings = env.environ(
        MONGO_URI=uri if proxied else env.uri,
        LEASES="true",
        LEASE_SECONDS=str(TTL),
        WATCH_INTERVAL="0.5",
        BATCH_SIZE="20",
        LOG_FORMAT="json",
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracos_sync",
                "--integrations",
                str(world.integrations),
                "watch",
            ],
            cwd=env.root,
            env=settings,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return Replica(proc, log)


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


def held_by(db: Database[Doc], holder: str) -> set[str]:
    return {name for name, h in holders(db).items() if h == holder}


def replica_of(db: Database[Doc], one: Replica) -> str:
    pid = f":{one.pid}:"
    found = {h for h in holders(db).values() if pid in h}
    found |= {d["name"] for d in db["sync_leases"].find({"kind": "replica"}) if pid in d["name"]}
    assert len(found) == 1, found
    return found.pop()


def stamped(db: Database[Doc], name: str) -> dict[Key, Doc]:
    """Every document a replica wrote on ``name``'s behalf, with its stamp."""
    return {
        (collection, doc["_id"]): doc
        for collection in collections(name)
        for doc in db[collection].find({"syncLease": {"$exists": True}})
    }


def until(
    condition: Callable[[], bool],
    limit: float,
    what: str,
    db: Database[Doc] | None = None,
    replicas: tuple[Replica, ...] = (),
) -> float:
    """Seconds until ``condition``; past ``limit``, fails saying the leases and heartbeats, and
    the end of what ``replicas`` logged (they are stopped)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start >= limit:
            state = list(db["sync_leases"].find()) if db is not None else ""
            for one in replicas:
                one.proc.kill()
                one.proc.wait(timeout=10)
            said = "\n".join(one.tail() for one in replicas)
            pytest.fail(f"not within {limit} s: {what}\n{state}\n{said}")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.slow
def test_replicas_share_take_over_and_fence_out_a_frozen_one(
    world: World, started: Callable[..., Replica]
) -> None:
    db = world.db
    replicas = [started(), started(proxied=True), started()]
    load, writes = Load(world), Writes(db)
    loader = threading.Thread(target=load.run, daemon=True)
    watcher = threading.Thread(target=writes.run, daemon=True)
    everyone = tuple(replicas)
    try:
        watcher.start()
        # Shared: every integration held, by all three, ten each.
        until(
            lambda: (
                len(holders(db)) == len(names())
                and sorted(Counter(holders(db).values()).values()) == [10, 10, 10]
            ),
            30,
            "three replicas holding ten integrations each",
            db,
            everyone,
        )
        loader.start()
        killed, frozen = replicas[0], replicas[1]
        killed_name, frozen_name = replica_of(db, killed), replica_of(db, frozen)
        # SIGKILL: its integrations are taken over within 2 x TTL.
        of_killed = held_by(db, killed_name)
        killed.proc.kill()
        taken = until(
            lambda: not of_killed & held_by(db, killed_name) and of_killed <= set(holders(db)),
            10,
            "take-over after a kill",
            db,
            everyone,
        )
        assert taken <= 2 * TTL, taken
        print(f"take-over after a SIGKILL: {taken:.1f} s ({len(of_killed)} integrations)")
        # SIGSTOP past its lease: its integrations are taken over within 2 x TTL; woken, it
        # writes nothing stale. Frozen with work in hand: a burst of TracOS edits in one of its
        # integrations, going out 20 at a time (BATCH_SIZE).
        of_frozen = held_by(db, frozen_name)
        frozen_epochs = {n: leases(db)[n]["epoch"] for n in of_frozen}
        target = sorted(of_frozen)[0]
        db[target].insert_many([tracos_doc(BURST + j, isSynced=False) for j in range(300)])
        load.edits[target] |= {BURST + j for j in range(300)}
        until(
            lambda: any(n >= BURST for n in world.exported(target)),
            10,
            "the burst going out",
            db,
            everyone,
        )
        freeze_with_a_write_on_its_way(world, frozen, everyone)
        taken = until(
            lambda: of_frozen <= set(holders(db)) and not of_frozen & held_by(db, frozen_name),
            10,
            "take-over of a frozen one",
            db,
            everyone,
        )
        assert taken <= 2 * TTL, taken
        print(f"take-over after a SIGSTOP: {taken:.1f} s ({len(of_frozen)} integrations)")
        before = {key: doc for name in of_frozen for key, doc in stamped(db, name).items()}
        world.proxy.release()
        os.kill(frozen.pid, signal.SIGCONT)
        # A new replica: it gets its share (and the woken one, which lost every lease, too).
        replicas.append(newcomer := started())
        until(
            lambda: (
                len(holders(db)) == len(names())
                and sorted(Counter(holders(db).values()).values()) == [10, 10, 10]
                and replica_of(db, newcomer) in holders(db).values()
            ),
            20,
            "the newcomer's share",
            db,
            tuple(replicas[1:]),
        )
        time.sleep(TTL)  # the load goes on under the new sharing
    finally:
        load.stopped.set()
        if loader.is_alive():
            loader.join()
    events = settle_and_stop(world, load, replicas[1:])
    writes.stopped.set()
    watcher.join()
    # The woken replica said for each integration it lost that it lost it, and no sweep of any
    # replica failed (a give-back lets the batch in hand finish under the lease).
    lost = [e for e in events[frozen.pid] if e["event"] == "lease.lost"]
    assert of_frozen <= {e["integration"] for e in lost}, lost
    failed = [e for lines in events.values() for e in lines if e.get("status") == "failed"]
    assert not failed, failed
    assert not holders(db)
    assert_nothing_stale(db, before, frozen_name, frozen_epochs)
    writes.assert_one_writer_at_a_time()
    assert_nothing_lost_nor_applied_twice(world, load)


def freeze_with_a_write_on_its_way(
    world: World, frozen: Replica, everyone: tuple[Replica, ...]
) -> None:
    """SIGSTOP with a fenced write (an update that stamps) already sent, held on its way by the
    proxy until ``world.proxy.release()``: delivered once the others have taken over, only the
    server's own check can refuse it."""
    world.proxy.hold(b"\x02update\x00", b"syncLease")
    until(
        world.proxy.holds,
        2 * TTL,
        "a fenced write of the replica to freeze on its way",
        world.db,
        everyone,
    )
    os.kill(frozen.pid, signal.SIGSTOP)


def settle_and_stop(world: World, load: Load, replicas: list[Replica]) -> dict[int, list[Doc]]:
    """Until every client file and ERP record is in TracOS and every edit exported; then
    SIGTERM: each replica gives its leases back and exits 0. Each one's log events, by pid."""
    db = world.db
    until(
        lambda: all(not list((world.env.root / n / "in").glob("*.json")) for n in folder_names()),
        30,
        "every client file taken",
        db,
        tuple(replicas),
    )
    until(
        lambda: all(
            db[n].count_documents({"number": {"$gte": client_base(n)}}) == load.files[n]
            for n in http_names()
        ),
        30,
        "every ERP record in TracOS",
        db,
        tuple(replicas),
    )
    until(
        lambda: all(db[n].count_documents({"isSynced": {"$ne": True}}) == 0 for n in names()),
        30,
        "every TracOS edit exported",
        db,
        tuple(replicas),
    )
    for one in replicas:
        one.proc.send_signal(signal.SIGTERM)
    events = {}
    for one in replicas:
        one.proc.wait(timeout=30)
        assert one.proc.returncode == 0, one.tail()
        events[one.pid] = one.events()
    return events


def assert_nothing_stale(
    db: Database[Doc], before: dict[Key, Doc], frozen_name: str, frozen_epochs: dict[str, int]
) -> None:
    """None of the woken replica's old-epoch documents changed or appeared after its leases
    were taken over."""
    for name, epoch in frozen_epochs.items():
        for key, doc in stamped(db, name).items():
            lease = doc["syncLease"]
            if lease["holder"] == frozen_name and lease["epoch"] <= epoch:
                assert before.get(key) == doc, (key, doc)


def assert_nothing_lost_nor_applied_twice(world: World, load: Load) -> None:
    db = world.db
    for name in names():
        # Every client record in TracOS, once (its number is unique in the collection).
        numbers = db[name].distinct("number", {"number": {"$gte": client_base(name)}})
        assert len(numbers) == load.files[name], name
        assert db[name].count_documents({"number": {"$gte": client_base(name)}}) == len(numbers)
        # Every TracOS edit with the client, none twice: an archived file once, without a ~N
        # copy; every copy an ERP received of one order the same (sent again after a kill,
        # unchanged, is allowed; two versions are not).
        assert world.exported(name) == load.edits[name], name
        if name in world.erps:
            bodies: dict[int, list[Doc]] = defaultdict(list)
            for body in world.erps[name].received:
                bodies[int(body["orderNo"])].append(body)
            assert all(b == copies[0] for copies in bodies.values() for b in copies), name
        else:
            processed = [p.name for p in (world.env.root / name / "in" / "processed").iterdir()]
            assert len(processed) == load.files[name], name
            assert not [p for p in processed if "~" in p], name
