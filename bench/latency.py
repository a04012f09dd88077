"""Latency benchmark: how long a work order takes to cross while ``tracos-sync watch`` runs.

    python bench/latency.py [--rates 50,400] [--duration 30] [--edit-rate 50]

Starts ``tracos-sync watch --embedded`` (the local server, its data in a temp folder, default
settings otherwise; extra settings come from the environment, e.g. ``WATCH_EVENTS=0``), then:

- inbound, once per rate: drops client files into the inbound folder at a steady rate for
  ``--duration`` seconds, each written under a hidden temp name then renamed in (atomic, as a
  client should); latency = the TracOS document's ``syncedAt`` minus the moment just before the
  rename. ``syncedAt`` is stamped when the batch is sent to TracOS, at millisecond precision;
- outbound: edits TracOS documents (as TracOS does: new ``updatedAt``, ``isSynced: false``) at
  ``--edit-rate`` per second for ``--duration`` seconds; latency = the moment the document's
  outbound file was renamed into place (its ctime) minus the moment just before the edit.

Prints p50/p90/p99/max per phase, the rate really achieved, and the machine's load. With
``LATENCY_LOG=<path>`` watch's whole log (JSON lines) is kept there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import orjson  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.builders import client_record  # noqa: E402
from tests.server import server_binary  # noqa: E402

Doc = dict[str, Any]


class Watch:
    """``tracos-sync watch --embedded`` in its own process; its log read as it goes."""

    def __init__(self, root: Path) -> None:
        self.inbound = root / "in"
        self.outbound = root / "out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO_", "DATA_"))}
        env.update(
            MONGO_EMBEDDED="1",
            MONGO_EMBEDDED_DIR=str(root / "db"),
            DATA_INBOUND_DIR=str(self.inbound),
            DATA_OUTBOUND_DIR=str(self.outbound),
            LOG_FORMAT="json",
            SECANTUSD_BIN=os.environ.get("SECANTUSD_BIN") or server_binary(),
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tracos_sync", "watch"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port: int | None = None
        self.summaries: list[Doc] = []  # each sweep that did something: its counts, seconds
        self.errors: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        keep = os.environ.get("LATENCY_LOG")
        with open(keep or os.devnull, "w") as raw:
            for line in self.process.stderr:
                if keep:
                    raw.write(line)
                self._take(line)

    def _take(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            self.errors.append(line.rstrip())
            return
        if event.get("event") == "embedded.started":
            self.port = int(event["port"])
        elif event.get("event") == "run.summary":
            self.summaries.append(event)
        elif event.get("level") in ("error", "warning"):
            self.errors.append(line.rstrip())

    def wait(self, condition: Callable[[], bool], limit: float, what: str) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            if self.process.poll() is not None:
                raise SystemExit(f"watch exited ({self.process.returncode}): {self.errors[-5:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self._reader.join(timeout=5)


def steady(rate: float, duration: float, act: Callable[[int], None]) -> float:
    """Call ``act(i)`` at ``rate`` per second for ``duration`` seconds, on schedule (no catching
    up in bursts beyond the schedule); return the rate achieved."""
    count = int(rate * duration)
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        act(i)
    return count / (time.perf_counter() - start)


def drop_files(
    folder: Path, first: int, rate: float, duration: float
) -> tuple[dict[int, float], float]:
    dropped: dict[int, float] = {}

    def drop(i: int) -> None:
        number = first + i
        tmp = folder / f".{number}.json.tmp"
        tmp.write_bytes(orjson.dumps(client_record(number)))
        dropped[number] = time.time()
        os.rename(tmp, folder / f"{number}.json")

    achieved = steady(rate, duration, drop)
    return dropped, achieved


def inbound_phase(
    watch: Watch, client: MongoClient[Doc], first: int, rate: float, duration: float
) -> dict[str, Any]:
    sweeps = len(watch.summaries)
    dropped, achieved = drop_files(watch.inbound, first, rate, duration)
    numbers = list(dropped)
    collection = client.tractian.workorders
    watch.wait(
        lambda: (
            collection.count_documents({"number": {"$gte": first}, "syncedAt": {"$ne": None}})
            >= len(numbers)
        ),
        120,
        f"the {len(numbers)} files in TracOS",
    )
    latencies = []
    for doc in collection.find({"number": {"$gte": first}}, {"number": 1, "syncedAt": 1}):
        latencies.append(doc["syncedAt"].timestamp() - dropped[doc["number"]])
    return {
        "what": f"file -> TracOS, {rate:g}/s",
        "achieved": achieved,
        "sweeps": watch.summaries[sweeps:],
        "load": os.getloadavg()[0],
        "latencies": latencies,
    }


def outbound_phase(
    watch: Watch, client: MongoClient[Doc], numbers: list[int], rate: float, duration: float
) -> dict[str, Any]:
    sweeps = len(watch.summaries)
    collection = client.tractian.workorders
    edited: dict[int, float] = {}
    count = min(len(numbers), int(rate * duration))

    def edit(i: int) -> None:
        number = numbers[i]
        edited[number] = time.time()
        collection.update_one(
            {"number": number},
            {
                "$set": {
                    "title": f"edited {number}",
                    "updatedAt": datetime.now(UTC),
                    "isSynced": False,
                }
            },
        )

    achieved = steady(rate, count / rate, edit)
    files = {n: watch.outbound / f"{n}.json" for n in edited}
    watch.wait(lambda: all(p.exists() for p in files.values()), 120, f"the {count} outbound files")
    latencies = [files[n].stat().st_ctime - t for n, t in edited.items()]
    return {
        "what": f"TracOS edit -> file, {rate:g}/s",
        "achieved": achieved,
        "sweeps": watch.summaries[sweeps:],
        "load": os.getloadavg()[0],
        "latencies": latencies,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="50,400", help="files per second, one phase each")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--edit-rate", type=float, default=50.0, help="TracOS edits per second")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r]
    prefixes = ("WATCH_", "BATCH_", "INBOUND_")
    settings = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"latency bench: {machine}, settings: {settings or 'defaults'}")
    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory(prefix="tracos-latency-") as tmp:
        watch = Watch(Path(tmp))
        try:
            watch.wait((watch.inbound / "processed").is_dir, 120, "the first sweep")
            assert watch.port is not None
            uri = f"mongodb://127.0.0.1:{watch.port}/?directConnection=true"
            with MongoClient[Doc](uri, tz_aware=True) as client:
                results = []
                for phase, rate in enumerate(rates, start=1):
                    first = phase * 1_000_000
                    results.append(inbound_phase(watch, client, first, rate, args.duration))
                edits = int(args.edit_rate * args.duration)
                applied = client.tractian.workorders.find({}, {"number": 1}).limit(edits)
                numbers = [doc["number"] for doc in applied]
                results.append(
                    outbound_phase(watch, client, numbers, args.edit_rate, args.duration)
                )
        finally:
            watch.stop()
    header = ("achieved/s", "n", "sweeps", "p50 ms", "p90 ms", "p99 ms", "max ms")
    width = 32
    print(
        f"{'':32} {header[0]:>10} {header[1]:>6} {header[2]:>6}", *(f"{h:>7}" for h in header[3:])
    )
    for r in results:
        lat = r["latencies"]
        cells = " ".join(f"{percentile(lat, p) * 1000:7.0f}" for p in (0.5, 0.9, 0.99, 1.0))
        print(f"{r['what']:32} {r['achieved']:10.1f} {len(lat):6d} {len(r['sweeps']):6d} {cells}")
    # Where a slow tail comes from: the sweeps themselves (a slow server, a busy machine).
    print("sweeps that did something, per phase: seconds p50/p99/max, most files in one sweep")
    for r in results:
        took = [float(e["seconds"]) for e in r["sweeps"]] or [0.0]
        most = max((int(e["files"]) for e in r["sweeps"]), default=0)
        cells = "/".join(f"{percentile(took, p) * 1000:.0f}" for p in (0.5, 0.99, 1.0))
        print(f"  {r['what']:{width}} {cells} ms, {most} files; load at the end {r['load']:.2f}")
    print(f"load average after: {load()}")
    if watch.errors:
        print(f"{len(watch.errors)} warnings or errors from watch, the last: {watch.errors[-1]}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


if __name__ == "__main__":
    main()
