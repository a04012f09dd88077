"""Throughput benchmark: the CLI against the raw limit and a naive baseline, on one server.

    python bench/bench.py [--n 5000] [--naive-n 1000] [--max-ratio 1.5] [--min-speedup 30]

Everything runs in the same process run, against one SecantusDB server started here (a separate
process, like the tests'), on fresh databases and folders, so that the ratios compare like with
like. Absolute times on SecantusDB are not mongod's; the ratios are what this measures.

- raw limit, inbound: read + parse each file, ``insert_many`` (journaled) per 1,000, move each
  file. Outbound: one find, write each file (temp, fsync, rename; the same 8 writer threads the
  CLI uses), one ``update_many``.
- CLI: ``tracos-sync inbound`` / ``outbound`` as a user runs them (wall time, process start
  included).
- naive baseline: the per-document approach (``find_one`` without an index then ``insert_one``;
  ``update_one`` per exported document), measured on ``--naive-n`` records and scaled linearly to
  N (an underestimate: its unindexed ``find_one`` grows with the collection).
- pure path: decode + validate + translate, no database, in records per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import orjson  # noqa: E402
from pymongo import MongoClient, UpdateOne  # noqa: E402
from pymongo.write_concern import WriteConcern  # noqa: E402
from tests.builders import client_record, tracos_doc  # noqa: E402
from tests.server import Server  # noqa: E402

from tracos_sync.connectors.client_erp.codec import RecordDecoder  # noqa: E402
from tracos_sync.mapping import builtin_mapping  # noqa: E402
from tracos_sync.tracos.documents import EXPORTED_FIELDS  # noqa: E402

Doc = dict[str, Any]


def make_files(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for number in range(1, n + 1):
        (folder / f"{number}.json").write_bytes(orjson.dumps(client_record(number)))


def copy_files(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def production_indexes(client: MongoClient[Doc], db: str) -> None:
    """The indexes every correct loader maintains (the same ones tracos-sync ensures)."""
    client[db]["w"].create_index("number", unique=True)
    client[db]["w"].create_index([("isSynced", 1), ("_id", 1)])


def raw_inbound(client: MongoClient[Doc], db: str, inbound: Path) -> float:
    """Read + parse + map each file, insert_many (journaled) per 1,000, move each file."""
    production_indexes(client, db)
    collection = client[db]["w"].with_options(write_concern=WriteConcern(j=True))
    done = inbound / "processed"
    done.mkdir()
    start = time.perf_counter()
    names = [e.name for e in os.scandir(inbound) if e.name.endswith(".json")]
    now = datetime.now(UTC)
    for first in range(0, len(names), 1000):
        batch = names[first : first + 1000]
        docs = []
        for name in batch:
            r = orjson.loads((inbound / name).read_bytes())
            docs.append(
                {
                    "number": r["orderNo"],
                    "status": "pending",
                    "title": r["summary"],
                    "description": r["summary"],
                    "createdAt": datetime.fromisoformat(r["creationDate"]),
                    "updatedAt": datetime.fromisoformat(r["lastUpdateDate"]),
                    "deleted": r["isDeleted"],
                    "deletedAt": None,
                    "isSynced": True,
                    "syncedAt": now,
                }
            )
        collection.insert_many(docs, ordered=False)
        for name in batch:
            os.rename(inbound / name, done / name)
    return time.perf_counter() - start


def naive_inbound(client: MongoClient[Doc], db: str, inbound: Path, n: int, limit: int) -> float:
    """Per document: find_one by number (no index), insert_one. Its cost grows with the
    collection, so the timed window sits in the middle of the run: the first N/2 - limit/2
    documents are loaded untimed, and the timed per-document cost, scaled by N, is the run's."""
    collection = client[db]["w"]
    done = inbound / "processed"
    done.mkdir()
    names = sorted(
        (e.name for e in os.scandir(inbound) if e.name.endswith(".json")),
        key=lambda name: int(name.split(".")[0]),
    )
    preload = max(0, n // 2 - limit // 2)
    if preload:
        collection.insert_many(
            [orjson.loads((inbound / name).read_bytes()) for name in names[:preload]]
        )
    start = time.perf_counter()
    for name in names[preload : preload + limit]:
        record = json.loads((inbound / name).read_text())
        existing = collection.find_one({"orderNo": record["orderNo"]})
        if existing is None:
            collection.insert_one(record)
        os.rename(inbound / name, done / name)
    return (time.perf_counter() - start) * n / limit


def _write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def raw_outbound(client: MongoClient[Doc], db: str, outbound: Path, conditional: bool) -> float:
    """One find, write each file (temp, fsync, rename; 8 threads), fsync the folder, then mark:
    one bulk of per-document marks conditional on every exported field as read (what a correct
    exporter must do: an edit that keeps updatedAt must not be marked delivered), or one
    unconditional update_many (the issue's figure; not correct)."""
    production_indexes(client, db)
    collection = client[db]["w"]
    outbound.mkdir(parents=True)
    start = time.perf_counter()
    docs = list(collection.find({"isSynced": {"$in": [False, None]}}))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda d: _write(outbound / f"{d['number']}.json", to_client(d)), docs))
    fd = os.open(outbound, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    mark = {"$set": {"isSynced": True, "syncedAt": datetime.now(UTC)}}
    if conditional:
        collection.bulk_write(
            [
                UpdateOne(
                    {"_id": d["_id"], **{f: {"$eq": d.get(f)} for f in EXPORTED_FIELDS}},
                    mark,
                    hint=[("_id", 1)],
                )
                for d in docs
            ],
            ordered=False,
        )
    else:
        collection.update_many({"isSynced": {"$ne": True}}, mark)
    return time.perf_counter() - start


def to_client(d: Doc) -> bytes:
    return orjson.dumps(
        {
            "orderNo": d["number"],
            "isActive": False,
            "isCanceled": False,
            "isDone": False,
            "isOnHold": False,
            "isPending": True,
            "isDeleted": d["deleted"],
            "isSynced": True,
            "summary": d["title"],
            "creationDate": d["createdAt"].isoformat(),
            "lastUpdateDate": d["updatedAt"].isoformat(),
            "deletedDate": None,
        },
        option=orjson.OPT_INDENT_2,
    )


def naive_outbound(client: MongoClient[Doc], db: str, outbound: Path, n: int, limit: int) -> float:
    """Per document: write the file, update_one by number (no index). The collection holds all
    N documents throughout, so the per-document cost measured on ``limit`` scales to N."""
    collection = client[db]["w"]
    outbound.mkdir(parents=True)
    start = time.perf_counter()
    for doc in collection.find({"isSynced": {"$ne": True}}).limit(limit):
        (outbound / f"{doc['number']}.json").write_text(json.dumps(doc, default=str))
        collection.update_one({"number": doc["number"]}, {"$set": {"isSynced": True}})
    return (time.perf_counter() - start) * n / limit


def folders(inbound: Path, outbound: Path) -> dict[str, str]:
    """The CLI's settings for local folders."""
    return {"DATA_INBOUND_DIR": str(inbound), "DATA_OUTBOUND_DIR": str(outbound)}


def cli(command: str, uri: str, db: str, settings: dict[str, str]) -> tuple[float, str]:
    """``tracos-sync <command>`` as a user runs it, on ``db`` with ``settings`` (its folders):
    its wall time, process start included, and its summary line's fields."""
    env = dict(
        os.environ,
        MONGO_URI=uri,
        MONGO_DATABASE=db,
        MONGO_COLLECTION="w",
        BATCH_SIZE="1000",
        PYTHONPATH=str(ROOT / "src"),
        **settings,
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tracos_sync", command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"CLI {command} failed:\n{proc.stderr}")
    summary = next(line for line in proc.stderr.splitlines() if "run.summary" in line)
    return elapsed, summary.split("run.summary", 1)[1].strip()


def seed_documents(client: MongoClient[Doc], db: str, n: int) -> None:
    collection = client[db]["w"]
    for first in range(1, n + 1, 5000):
        collection.insert_many([tracos_doc(k) for k in range(first, min(first + 5000, n + 1))])


def pure_path(records: int) -> float:
    decoder = RecordDecoder(builtin_mapping())
    payloads = [orjson.dumps(client_record(n)) for n in range(1, records + 1)]
    start = time.perf_counter()
    for raw in payloads:
        decoded = decoder.decode(raw)
        assert decoded.records
    return records / (time.perf_counter() - start)


Results = dict[str, dict[str, float]]


def measure(
    args: argparse.Namespace, server: Server, client: MongoClient[Doc], work: Path
) -> tuple[Results, float, str, str]:
    """Raw and CLI: best of ``--repeat`` runs, each on a fresh database and folder (the machine
    is shared and noisy; the best run is the one least disturbed). Naive: once."""
    n, naive_n = args.n, min(args.naive_n, args.n)
    template = work / "template"
    make_files(template, n)
    runs: dict[str, list[float]] = {k: [] for k in ("raw_in", "cli_in", "raw_out", "any", "cli")}
    summary_in = summary_out = ""
    for k in range(args.repeat):
        runs["raw_in"].append(
            raw_inbound(client, f"raw_in{k}", copy_files(template, work / f"r{k}"))
        )
        t, summary_in = cli(
            "inbound",
            server.uri,
            f"cli_in{k}",
            folders(copy_files(template, work / f"c{k}"), work / "unused"),
        )
        runs["cli_in"].append(t)
        for db in (f"raw_out{k}", f"raw_any{k}", f"cli_out{k}"):
            seed_documents(client, db, n)
        runs["raw_out"].append(raw_outbound(client, f"raw_out{k}", work / f"ro{k}", True))
        runs["any"].append(raw_outbound(client, f"raw_any{k}", work / f"ru{k}", False))
        t, summary_out = cli(
            "outbound", server.uri, f"cli_out{k}", folders(work / "empty", work / f"co{k}")
        )
        runs["cli"].append(t)
        for db in client.list_database_names():
            if db.endswith(str(k)) and db.startswith(("raw_", "cli_")):
                client.drop_database(db)
    seed_documents(client, "naive_out", n)
    results = {
        "inbound": {
            "raw": min(runs["raw_in"]),
            "cli": min(runs["cli_in"]),
            "naive": naive_inbound(
                client, "naive_in", copy_files(template, work / "n"), n, naive_n
            ),
        },
        "outbound": {
            "raw": min(runs["raw_out"]),
            "cli": min(runs["cli"]),
            "naive": naive_outbound(client, "naive_out", work / "no", n, naive_n),
            "unconditional": min(runs["any"]),
        },
    }
    return results, pure_path(min(n * 4, 20_000)), summary_in, summary_out


def report(
    args: argparse.Namespace, results: Results, rate: float, summary_in: str, summary_out: str
) -> int:
    n, naive_n = args.n, min(args.naive_n, args.n)
    unconditional = results["outbound"].pop("unconditional")
    print(
        f"\ntracos-sync benchmark: N={n} work orders, SecantusDB {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"raw and CLI: best of {args.repeat} runs; naive baseline: {naive_n} records timed at "
        f"mid-run collection size, scaled to N\n"
    )
    print("| direction | raw limit (s) | CLI (s) | naive (s) | CLI / raw | naive / CLI |")
    print("|---|---|---|---|---|---|")
    failed = False
    for direction, r in results.items():
        ratio, speedup = r["cli"] / r["raw"], r["naive"] / r["cli"]
        failed |= ratio > args.max_ratio or speedup < args.min_speedup
        print(
            f"| {direction} | {r['raw']:.2f} | {r['cli']:.2f} | {r['naive']:.1f} | "
            f"{ratio:.2f} | {speedup:.0f}x |"
        )
    print(
        f"\noutbound raw limit with one unconditional update_many instead of conditional "
        f"marks (not a correct exporter): {unconditional:.2f} s, CLI / that = "
        f"{results['outbound']['cli'] / unconditional:.2f}"
    )
    print(f"pure path (decode + validate + translate): {rate:,.0f} records/s")
    print(f"CLI inbound summary: {summary_in}\nCLI outbound summary: {summary_out}")
    if failed:
        print(
            f"\nFAIL: a CLI/raw ratio is over {args.max_ratio} or a speedup under "
            f"{args.min_speedup}x"
        )
        return 1
    print(
        f"\nOK: CLI within {args.max_ratio}x of the raw limit and at least "
        f"{args.min_speedup:g}x faster than the naive baseline"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--naive-n", type=int, default=1000)
    parser.add_argument("--max-ratio", type=float, default=1.5)
    parser.add_argument("--min-speedup", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3, help="raw and CLI runs; best is kept")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracos-bench-"))
    server = Server().start()
    client: MongoClient[Doc] = MongoClient(server.uri, tz_aware=True)
    try:
        results, rate, summary_in, summary_out = measure(args, server, client, work)
    finally:
        client.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return report(args, results, rate, summary_in, summary_out)


if __name__ == "__main__":
    sys.exit(main())
