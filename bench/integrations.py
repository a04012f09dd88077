"""What several integrations in one run cost beyond their work.

    python bench/integrations.py [--integrations 10] [--per 200] [--repeat 3]

The same work — ``--integrations`` times ``--per`` client files in and as many unsynced TracOS
documents out — run three ways against one SecantusDB server (a separate process):

- one integration holding all of it (``tracos-sync run``, no integrations file);
- ``--integrations`` integrations in one run (an integrations file: each its own folders and
  collection, run at once);
- the same integrations one run each (``--only NAME``), as a deployment without the file would.

Each is timed on its second run (the first, with nothing to do, creates the folders and indexes,
as a deployment's first run did long ago). Printed: the median wall time of each (process start
included), and the ratios "integrations in one run / one integration" (what splitting the work
costs) and "one run each / in one run".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import orjson  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from pymongo.collection import Collection  # noqa: E402
from tests.builders import client_record, tracos_doc  # noqa: E402
from tests.server import Server  # noqa: E402

Doc = dict[str, Any]


def prepare(
    inbound_of: Callable[[str], Path],
    collection_of: Callable[[str], Collection[Doc]],
    names: list[str],
    per: int,
) -> None:
    """Each name: ``per`` files in its inbound folder and ``per`` unsynced documents in its
    collection (numbers distinct across names, so that one integration can hold them all)."""
    for index, name in enumerate(names):
        inbound = inbound_of(name)
        inbound.mkdir(parents=True, exist_ok=True)
        first = index * per * 2 + 1
        for number in range(first, first + per):
            (inbound / f"{number}.json").write_bytes(orjson.dumps(client_record(number)))
        documents = [tracos_doc(n, isSynced=False) for n in range(first + per, first + 2 * per)]
        collection_of(name).insert_many(documents)


def run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tracos_sync", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"tracos-sync {' '.join(args)} failed:\n{proc.stderr}")
    return elapsed


def integrations_file(path: Path, root: Path, names: list[str]) -> Path:
    lines = []
    for name in names:
        lines += [
            "[[integration]]",
            f"name = {json.dumps(name)}",
            f"tracos = {{ collection = {json.dumps(name)} }}",
            "[integration.settings]",
            f"data_inbound_dir = {json.dumps(str(root / name / 'in'))}",
            f"data_outbound_dir = {json.dumps(str(root / name / 'out'))}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def once(server: Server, client: MongoClient[Doc], count: int, per: int) -> dict[str, float]:
    """The three ways, each timed on its second run: the first (nothing to do) creates the
    folders and indexes, as a deployment's first run did long ago."""
    base = dict(os.environ, MONGO_URI=server.uri, PYTHONPATH=str(ROOT / "src"))
    times: dict[str, float] = {}
    names = [f"customer{i:02d}" for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="bench-integrations-") as tmp:
        root = Path(tmp)
        # One integration with everything: its files in one folder, documents in one collection.
        one = dict(
            base,
            MONGO_DATABASE="bench_one",
            MONGO_COLLECTION="all",
            DATA_INBOUND_DIR=str(root / "one" / "in"),
            DATA_OUTBOUND_DIR=str(root / "one" / "out"),
        )
        run(["run"], one, root)
        prepare(lambda _: root / "one" / "in", lambda _: client["bench_one"]["all"], names, per)
        times["one integration"] = run(["run"], one, root)

        for label, way in (("one run", "many"), ("a run each", "each")):
            path = integrations_file(root / f"{way}.toml", root / way, names)
            env = dict(base, MONGO_DATABASE=f"bench_{way}")
            run(["--integrations", str(path), "run"], env, root)
            prepare(
                lambda name, way=way: root / way / name / "in",
                lambda name, way=way: client[f"bench_{way}"][name],
                names,
                per,
            )
            if way == "many":
                seconds = run(["--integrations", str(path), "run"], env, root)
            else:
                seconds = sum(
                    run(["--integrations", str(path), "run", "--only", name], env, root)
                    for name in names
                )
            times[f"{count} integrations, {label}"] = seconds
    for db in ("bench_one", "bench_many", "bench_each"):
        client.drop_database(db)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=10)
    parser.add_argument("--per", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    server = Server().start()
    try:
        client: MongoClient[Doc] = MongoClient(server.uri)
        for _ in range(args.repeat):
            runs.append(once(server, client, args.integrations, args.per))
        client.close()
    finally:
        server.stop()
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    total = args.integrations * args.per
    print(f"work: {total} files in, {total} documents out; median of {args.repeat} runs")
    for key, seconds in median.items():
        print(f"  {key:<32} {seconds:6.2f} s")
    one, together, each = median.values()
    print(f"  integrations in one run / one integration: {together / one:.2f}")
    print(f"  a run each / integrations in one run:     {each / together:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
