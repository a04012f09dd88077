"""Replicas sharing integrations through leases: the work per replica, the latency of a file in
the slowest integration, and the take-over after a replica is killed.

    python bench/replicas.py [--integrations 300] [--rate 100] [--duration 60] [--ttl 15]
    python bench/replicas.py --quick        # 30 integrations, 10 s: that it works

``--integrations`` small folder integrations (each its own folders and collection), on one
SecantusDB server (a separate process), served by ``tracos-sync watch`` with ``LEASES`` on:

- once by 1 replica, once by 3 (a fresh database each time). Once every integration is held
  (and, with 3, spread: none above its share, ``ceil(integrations / 3)``), client files are
  dropped at ``--rate`` per second in all, round-robin across the integrations, for
  ``--duration`` seconds (each written under a hidden temp name, then renamed in);
- per replica: the integrations it served and the files it handled, read from what it wrote
  (the ``syncLease`` stamp of each work order: its holder), not from its logs;
- latency of a file: its work order's ``syncedAt`` (stamped when the batch is sent to TracOS)
  minus the moment just before the rename; per integration, and that of the slowest one (the
  highest p99): p50/p99/max;
- then, with 3, one replica is killed (SIGKILL) and each of its integrations timed until
  another replica holds its lease (the lease documents, read every 50 ms).

Prints a table and the ratios; exits 1 when the 3-replica run is not spread (a replica held
more than its share, or handled more files than its share of the integrations' files rounded
up) or a file was not in TracOS within two minutes of the last drop (lost).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import orjson  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from pymongo.database import Database  # noqa: E402
from tests.builders import client_record  # noqa: E402
from tests.server import Server  # noqa: E402

Doc = dict[str, Any]
# A file's number: 1,000,000 x (its integration's index + 1) + its rank in that integration.
SPAN = 1_000_000


def names(count: int) -> list[str]:
    return [f"c{i:03d}" for i in range(count)]


def integrations_file(path: Path, root: Path, count: int) -> Path:
    lines = []
    for name in names(count):
        (root / name / "in").mkdir(parents=True, exist_ok=True)
        lines += [
            "[[integration]]",
            f'name = "{name}"',
            f'tracos = {{ collection = "{name}" }}',
            "[integration.settings]",
            f'data_inbound_dir = "{root / name / "in"}"',
            f'data_outbound_dir = "{root / name / "out"}"',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Fleet:
    """``watch`` replicas on one integrations file, their logs in files."""

    uri: str
    database: str
    integrations: Path
    root: Path
    ttl: float
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "DATA_"))}
        env.update(
            MONGO_URI=self.uri,
            MONGO_DATABASE=self.database,
            PYTHONPATH=str(ROOT / "src"),
            LEASES="true",
            LEASE_SECONDS=f"{self.ttl:g}",
            LOG_FORMAT="json",
        )
        log = self.root / f"{self.database}-replica-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tracos_sync",
                    "--integrations",
                    str(self.integrations),
                    "watch",
                ],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def held(db: Database[Doc]) -> dict[str, str]:
    """Integration -> holder, of the leases held now (by the server's clock)."""
    now = db.command("hello")["localTime"].replace(tzinfo=UTC)
    return {
        doc["name"]: doc["holder"]
        for doc in db["sync_leases"].find({"kind": "integration"})
        if doc.get("holder") and doc["expiresAt"].replace(tzinfo=UTC) > now
    }


def wait(condition: Callable[[], bool], limit: float, what: str, fleet: Fleet) -> float:
    start = time.monotonic()
    while not condition():
        if any(proc.poll() is not None for proc in fleet.procs):
            raise SystemExit(f"a replica exited while waiting for {what} (logs in {fleet.root})")
        if time.monotonic() - start > limit:
            raise SystemExit(f"timed out waiting for {what} (logs in {fleet.root})")
        time.sleep(0.05)
    return time.monotonic() - start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


@dataclass
class Phase:
    replicas: int
    integrations: int
    dropped: dict[int, float]
    achieved: float
    # Per replica: integrations it wrote for, files it handled; the most leases it held at once.
    served: dict[str, set[str]]
    files: Counter[str]
    most_held: Counter[str]
    latencies: dict[str, list[float]]
    lost: int
    load: float
    takeover: list[float] = field(default_factory=list)

    @property
    def share(self) -> int:
        return math.ceil(self.integrations / self.replicas)

    def slowest(self) -> tuple[str, list[float]]:
        return max(self.latencies.items(), key=lambda item: percentile(item[1], 0.99))


def drop_files(
    root: Path, count: int, rate: float, duration: float
) -> tuple[dict[int, float], float]:
    """Files at ``rate`` per second, round-robin over the integrations, on schedule."""
    dropped: dict[int, float] = {}
    folders = [root / name / "in" for name in names(count)]
    total = int(rate * duration)
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        index, rank = i % count, i // count
        number = SPAN * (index + 1) + rank
        folder = folders[index]
        tmp = folder / f".{number}.json.tmp"
        tmp.write_bytes(orjson.dumps([client_record(number)]))
        dropped[number] = time.time()
        os.rename(tmp, folder / f"{number}.json")
    return dropped, total / (time.perf_counter() - start)


def phase(
    server: Server, client: MongoClient[Doc], replicas: int, args: argparse.Namespace, tmp: Path
) -> Phase:
    count = args.integrations
    root = tmp / f"r{replicas}"
    database = f"bench_replicas_{replicas}"
    client.drop_database(database)
    db = client[database]
    path = integrations_file(tmp / f"r{replicas}.toml", root, count)
    fleet = Fleet(server.uri, database, path, tmp, args.ttl)
    share = math.ceil(count / replicas)
    try:
        for _ in range(replicas):
            fleet.start()
        wait(
            lambda: (
                len(holders := held(db)) == count
                and len(set(holders.values())) == replicas
                and max(Counter(holders.values()).values()) <= share
            ),
            60 + 4 * args.ttl,
            f"{count} integrations held by {replicas} replica(s), spread",
            fleet,
        )
        most: Counter[str] = Counter()
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                for holder, n in Counter(held(db).values()).items():
                    most[holder] = max(most[holder], n)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        dropped, achieved = drop_files(root, count, args.rate, args.duration)
        last = time.monotonic()
        pending = set(dropped)
        while pending and time.monotonic() - last < 120:
            for i, name in enumerate(names(count)):
                span = {"$gte": SPAN * (i + 1), "$lt": SPAN * (i + 2)}
                found = db[name].distinct("number", {"number": span, "syncedAt": {"$ne": None}})
                pending -= set(found)
            time.sleep(0.2)
        sampling.set()
        sampler.join()
        served: dict[str, set[str]] = defaultdict(set)
        files: Counter[str] = Counter()
        latencies: dict[str, list[float]] = defaultdict(list)
        for name in names(count):
            for doc in db[name].find({}, {"number": 1, "syncedAt": 1, "syncLease": 1}):
                if doc["number"] not in dropped:
                    continue
                holder = doc["syncLease"]["holder"]
                served[holder].add(name)
                files[holder] += 1
                latencies[name].append(doc["syncedAt"].timestamp() - dropped[doc["number"]])
        result = Phase(
            replicas,
            count,
            dropped,
            achieved,
            served,
            files,
            most,
            latencies,
            len(pending),
            os.getloadavg()[0],
        )
        if replicas > 1:
            result.takeover = takeover(db, fleet, count)
        return result
    finally:
        fleet.stop()


def takeover(db: Database[Doc], fleet: Fleet, count: int) -> list[float]:
    """Seconds from a SIGKILL of the first replica until each of its integrations is held by
    another."""
    victim = fleet.procs[0]
    mine = f":{victim.pid}:"
    theirs = {name for name, holder in held(db).items() if mine in holder}
    victim.kill()
    victim.wait()
    killed = time.monotonic()
    times: dict[str, float] = {}
    while len(times) < len(theirs):
        if time.monotonic() - killed > 10 * fleet.ttl + 60:
            raise SystemExit(f"{len(theirs) - len(times)} integrations not taken over")
        now = held(db)
        for name in theirs - set(times):
            if name in now and mine not in now[name]:
                times[name] = time.monotonic() - killed
        time.sleep(0.05)
    return sorted(times.values())


def report(phases: list[Phase], ttl: float) -> int:
    print(
        f"{'':12} {'replica':>16} {'integrations':>12} {'most held':>9} {'files':>7} {'share':>6}"
    )
    for p in phases:
        fair = math.ceil(len(p.dropped) / p.replicas)
        for holder in sorted(p.files):
            print(
                f"{p.replicas} replica(s) {holder[-16:]:>16} {len(p.served[holder]):12d}"
                f" {p.most_held[holder]:9d} {p.files[holder]:7d} {p.files[holder] / fair:6.2f}"
            )
    print()
    print(
        f"{'':12} {'files':>7} {'achieved/s':>10} {'lost':>5}  slowest integration p50/p99/max ms"
    )
    for p in phases:
        name, lat = p.slowest()
        cells = "/".join(f"{percentile(lat, q) * 1000:.0f}" for q in (0.5, 0.99, 1.0))
        print(
            f"{p.replicas} replica(s) {len(p.dropped):7d} {p.achieved:10.1f} {p.lost:5d}"
            f"  {name}: {cells}  (load {p.load:.2f})"
        )
    one, three = phases
    ratio = percentile(three.slowest()[1], 0.99) / percentile(one.slowest()[1], 0.99)
    print(f"slowest integration's p99, 3 replicas / 1 replica: {ratio:.2f}")
    fair = math.ceil(len(three.dropped) / 3)
    print(
        f"most files one replica of 3 handled / its share: {max(three.files.values()) / fair:.2f}"
    )
    if three.takeover:
        t = three.takeover
        print(
            f"take-over after a SIGKILL: {len(t)} integrations, p50 {percentile(t, 0.5):.1f} s,"
            f" max {t[-1]:.1f} s = {t[-1] / ttl:.2f} x LEASE_SECONDS ({ttl:g} s)"
        )
    failures = []
    for p in phases:
        if p.lost:
            failures.append(f"{p.replicas} replica(s): {p.lost} files not in TracOS (lost)")
    # Spread: no replica held more than its share, nor handled more than its share of the files
    # (files are dropped evenly over the integrations, rounded up per integration).
    per_integration = math.ceil(len(three.dropped) / three.integrations)
    for holder, most in three.most_held.items():
        if most > three.share:
            failures.append(f"{holder} held {most} leases at once, above its share {three.share}")
    for holder, files in three.files.items():
        if files > three.share * per_integration:
            failures.append(
                f"{holder} handled {files} files, above {three.share * per_integration}"
            )
    if len(three.files) < 3:
        failures.append(f"only {len(three.files)} of 3 replicas handled files")
    for failure in failures:
        print(f"NOT SPREAD OR LOST: {failure}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--integrations", type=int, default=300)
    parser.add_argument("--rate", type=float, default=100.0, help="files per second, in all")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of files")
    parser.add_argument("--ttl", type=float, default=15.0, help="LEASE_SECONDS")
    parser.add_argument("--quick", action="store_true", help="30 integrations, 10 s, TTL 5 s")
    args = parser.parse_args()
    if args.quick:
        args.integrations, args.rate, args.duration, args.ttl = 30, 20.0, 10.0, 5.0
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(
        f"replicas bench: {machine}; {args.integrations} integrations, {args.rate:g} files/s"
        f" for {args.duration:g} s, LEASE_SECONDS {args.ttl:g}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    server = Server().start()
    try:
        with (
            MongoClient[Doc](server.uri, tz_aware=True) as client,
            tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp,
        ):
            phases = [phase(server, client, n, args, Path(tmp)) for n in (1, 3)]
            for p in phases:
                client.drop_database(f"bench_replicas_{p.replicas}")
    finally:
        server.stop()
    return report(phases, args.ttl)


if __name__ == "__main__":
    raise SystemExit(main())
