"""The world of the randomized fault campaign (tests/faults/test_campaign.py): a file-backed
server of its own, one database and one set of folders per example, a small in-memory model of
what the client and TracOS wrote, and the invariants checked against it after every step."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pymongo import MongoClient, WriteConcern

from tests.builders import T0, client_record, iso, tracos_doc
from tests.conftest import Env, Result
from tests.server import Server

SIDECAR = ".error.json"
TRACOS, CLIENT = "tracos", "client"
BAD_FILE_AGE_SECONDS = 60.0


@dataclass
class Tally:
    """What a campaign did, printed at its end."""

    examples: int = 0
    steps: int = 0
    syncs: int = 0
    kills: int = 0
    restarts: int = 0
    pauses: int = 0
    # Rules that ran (begin), and faults that landed where they were aimed (a kill mid-run, an
    # edit between a write and its mark, a second instance while the first holds claims).
    rules: Counter[str] = field(default_factory=Counter)
    landed: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    # (check, what broke, the steps of the example, seconds into the campaign)
    violations: list[tuple[str, str, list[str], float]] = field(default_factory=list)

    def report(self, seconds: float) -> str:
        lines = [
            f"campaign: {seconds:.0f} s, {self.examples} examples, {self.steps} steps, "
            f"{self.syncs} syncs, {self.kills} syncs killed, {self.restarts} database restarts, "
            f"{self.pauses} paused runs, {len(self.violations)} violations",
        ]
        for rule, count in sorted(self.rules.items()):
            lines.append(f"  rule {rule}: {count}x")
        for fault, count in sorted(self.landed.items()):
            lines.append(f"  landed {fault}: {count}x")
        for rule, count in sorted(self.notes.items()):
            lines.append(f"  {count}x: {rule}")
        for check, detail, steps, after in self.violations:
            lines.append(f"  VIOLATION {check} after {after:.0f} s, step {len(steps)}: {detail}")
            lines.append("    after: " + " -> ".join(steps))
        return "\n".join(lines)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Version:
    minutes: int
    origin: str  # TRACOS or CLIENT
    label: str  # the title / summary, unique per version


class Shared:
    """What outlives one example: the server (file-backed, killable) and a client to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = Server(storage=root / "db").start()
        self.mongo: MongoClient[dict[str, Any]] = self._client()

    def _client(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.server.uri, tz_aware=True, serverSelectionTimeoutMS=30000)

    def restart_server(self) -> None:
        self.server.kill()
        self.server.start()

    def close(self) -> None:
        self.mongo.close()
        self.server.stop()
        shutil.rmtree(self.server.workdir, ignore_errors=True)


class World:
    """One example's database, folders and model."""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        name = f"c_{uuid.uuid4().hex[:10]}"
        self.root = shared.root / name
        self.root.mkdir()
        self.env = Env(self.root, shared.server.uri, name, self.docs, {})
        self.versions: dict[int, list[Version]] = {}
        self.dropped: Counter[bytes] = Counter()
        self.bad: set[bytes] = set()
        self.seq = 0
        self.live: list[subprocess.Popen[str]] = []

    @property
    def docs(self) -> Any:
        db = self.shared.mongo[self.root.name]
        # Journaled: TracOS's own writes must survive the database being killed.
        return db.get_collection("workorders", write_concern=WriteConcern(w=1, j=True))

    def label(self, origin: str) -> str:
        self.seq += 1
        return f"{origin}-{self.seq}"

    # -- the client --------------------------------------------------------------------------

    def drop(self, name: str, data: bytes, bad: bool = False) -> str:
        """Write a client file atomically and without replacing one already waiting. A bad file
        is dated a minute ago: a file that does not parse may be left for a settle time while it
        looks freshly changed (still being written); this one is finished, and is rejected."""
        self.env.inbound.mkdir(parents=True, exist_ok=True)
        tmp = self.env.inbound / f".drop-{uuid.uuid4().hex}.tmp"
        tmp.write_bytes(data)
        if bad:
            aged = time.time() - BAD_FILE_AGE_SECONDS
            os.utime(tmp, (aged, aged))
        stem = name.removesuffix(".json")
        for candidate in [name] + [f"{stem}-{n}.json" for n in range(1, 1000)]:
            try:
                os.link(tmp, self.env.inbound / candidate)
                break
            except FileExistsError:
                continue
        tmp.unlink()
        self.dropped[data] += 1
        if bad:
            self.bad.add(data)
        return candidate

    def drop_versions(self, numbers: list[int], minutes: int) -> None:
        for number in numbers:
            self.drop_version(number, minutes)

    def drop_version(self, number: int, minutes: int) -> str:
        label = self.label(CLIENT)
        record = client_record(number, summary=label, lastUpdateDate=iso(at(minutes)))
        self.versions.setdefault(number, []).append(Version(minutes, CLIENT, label))
        return self.drop(f"{number}.json", orjson.dumps(record))

    def latest(self, number: int) -> int:
        return max(v.minutes for v in self.versions[number])

    # -- TracOS -------------------------------------------------------------------------------

    def tracos_write(self, number: int, minutes: int, insert: bool) -> None:
        label = self.label(TRACOS)
        if insert:
            self.docs.insert_one(tracos_doc(number, title=label, updatedAt=at(minutes)))
        else:
            self.docs.update_one(
                {"number": number},
                {"$set": {"title": label, "updatedAt": at(minutes), "isSynced": False}},
            )
        self.versions.setdefault(number, []).append(Version(minutes, TRACOS, label))

    def tracos_insert_many(self, numbers: list[int], minutes: int) -> None:
        docs = []
        for number in numbers:
            label = self.label(TRACOS)
            docs.append(tracos_doc(number, title=label, updatedAt=at(minutes)))
            self.versions.setdefault(number, []).append(Version(minutes, TRACOS, label))
        if docs:
            self.docs.insert_many(docs)

    def stored_numbers(self) -> list[int]:
        return sorted({d["number"] for d in self.docs.find({}, {"number": 1})})

    # -- processes ----------------------------------------------------------------------------

    def cli(self, *args: str, **env: str) -> Result:
        return self.env.cli(*args, timeout=120, **env)

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        proc = self.env.popen(*args, **env)
        self.live.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen[str], timeout: float = 120) -> Result:
        out, err = proc.communicate(timeout=timeout)
        self.live.remove(proc)
        return Result(proc.returncode, out, err)

    def close(self) -> None:
        for proc in self.live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.communicate()
        self.live.clear()
        with contextlib.suppress(Exception):
            self.shared.mongo.drop_database(self.root.name)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- what is on disk ----------------------------------------------------------------------

    def claimed(self) -> list[Path]:
        claims = self.env.inbound / ".claims"
        return [p for p in claims.glob("*/*") if p.is_file()] if claims.is_dir() else []

    def waiting(self) -> list[Path]:
        inbound = self.env.inbound
        return sorted(inbound.glob("*.json")) if inbound.is_dir() else []


def wait_until(condition: Callable[[], bool], limit: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def written_since(world: World, started_ns: int) -> bool:
    """Whether anything (a temp file included) was written in the outbound folder since."""
    with contextlib.suppress(FileNotFoundError), os.scandir(world.env.outbound) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.stat(follow_symlinks=False).st_mtime_ns >= started_ns:
                    return True
    return False


def as_other_host(args: list[str]) -> list[str]:
    """A command run under another host name (a UTS namespace; needs root)."""
    script = 'hostname chaos-other-host && exec "$0" "$@"'
    return ["unshare", "--uts", "sh", "-c", script, sys.executable, "-m", "tracos_sync", *args]


# -- invariants: each returns what broke, empty when it holds -------------------------------


def duplicate_numbers(world: World) -> list[str]:
    counts = Counter(d["number"] for d in world.docs.find({}, {"number": 1}))
    return [f"number {n} stored {c} times" for n, c in sorted(counts.items()) if c > 1]


def files_accounted(world: World) -> list[str]:
    """Every client file in exactly one of inbound / processed / rejected (with its reason) or
    a claim; bad files only in rejected, good ones never."""
    env = world.env
    found: Counter[bytes] = Counter()
    broken = []
    places = [("inbound", world.waiting()), ("claims", world.claimed())]
    for place, folder in (("processed", env.processed), ("rejected", env.rejected)):
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        places.append((place, [p for p in files if not p.name.endswith(SIDECAR)]))
    for place, paths in places:
        for path in paths:
            data = path.read_bytes()
            found[data] += 1
            if place == "rejected" and data not in world.bad:
                broken.append(f"good file {path.name} rejected")
            if place == "rejected" and not path.with_name(path.name + SIDECAR).exists():
                broken.append(f"rejected {path.name} has no reason file")
            if place == "processed" and data in world.bad:
                broken.append(f"bad file {path.name} archived as processed")
    for data, count in (world.dropped - found).items():
        broken.append(f"client file lost ({count}x): {data[:60]!r}")
    for data, count in (found - world.dropped).items():
        broken.append(f"client file present {count} extra time(s): {data[:60]!r}")
    return broken


def synced_without_content(world: World, numbers: list[int] | None = None) -> list[str]:
    """Every TracOS version marked synced is in its outbound file, the same content (a version
    that came from the client is stored synced and needs no file: the client holds it). Of
    ``numbers`` only, when given."""
    broken = []
    query: dict[str, Any] = {"isSynced": True}
    if numbers is not None:
        query["number"] = {"$in": numbers}
    for doc in world.docs.find(query):
        if str(doc.get("title", "")).startswith(CLIENT):
            continue
        path = world.env.outbound / f"{doc['number']}.json"
        try:
            held = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            broken.append(f"{doc['number']} marked synced, file unreadable: {exc}")
            continue
        want = (doc["title"], doc["updatedAt"])
        have = (held.get("summary"), datetime.fromisoformat(held["lastUpdateDate"]))
        if want != have:
            broken.append(f"{doc['number']} marked synced at {want}, its file holds {have}")
    return broken


def unsynced_undelivered(world: World) -> list[str]:
    """Work orders left unsynced whose outbound file does not hold their version."""
    broken = []
    for doc in world.docs.find({"isSynced": {"$ne": True}}):
        path = world.env.outbound / f"{doc['number']}.json"
        try:
            held = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            broken.append(f"{doc['number']} unsynced, not delivered")
            continue
        have = (held.get("summary"), datetime.fromisoformat(held["lastUpdateDate"]))
        if have != (doc["title"], doc["updatedAt"]):
            broken.append(f"{doc['number']} unsynced, its file holds {have}")
    return broken


def newest(versions: list[Version]) -> Version:
    """The version that must win: the latest ``lastUpdateDate``; at a tie TracOS's own (its
    latest write: TracOS may edit keeping ``updatedAt``), else the first client copy (the
    later equal ones are stale)."""
    top = max(v.minutes for v in versions)
    at_top = [v for v in versions if v.minutes == top]
    own = [v for v in at_top if v.origin == TRACOS]
    return own[-1] if own else at_top[0]


def newest_not_winning(world: World) -> list[str]:
    """Once every client file is processed: each number holds its newest version (by
    lastUpdateDate; a tie keeps TracOS's own)."""
    broken = []
    stored = {d["number"]: d for d in world.docs.find({})}
    for number, versions in world.versions.items():
        winner = newest(versions)
        doc = stored.get(number)
        if doc is None:
            broken.append(f"{number} missing, newest is {winner}")
        elif (doc["title"], doc["updatedAt"]) != (winner.label, at(winner.minutes)):
            broken.append(f"{number} holds {doc['title']} @ {doc['updatedAt']}, newest {winner}")
    return broken


def number_index_missing(world: World) -> list[str]:
    """After a sync: the unique index on number is there (a run creates it, every time)."""
    for index in world.docs.list_indexes():
        if list(index["key"]) == ["number"] and index.get("unique"):
            return []
    return ["no unique index on number after a completed sync"]


def files_reported(result: Result) -> int:
    """Files a run says it took (``files=`` of every summary line)."""
    total = 0
    for line in result.output.splitlines():
        if "run.summary" in line:
            for token in line.split():
                key, _, value = token.partition("=")
                if key == "files" and value.isdigit():
                    total += int(value)
    return total


def left_unsynced(world: World) -> list[str]:
    return [f"{d['number']} still unsynced" for d in world.docs.find({"isSynced": {"$ne": True}})]
