"""Peak memory of one full run over a large backlog: N pending client files and N unsynced
TracOS documents (default 100,000 each). Memory must not grow with the backlog.

    python bench/memory.py [--n 100000] [--limit-mb 150]

Runs ``tracos-sync run`` under ``/usr/bin/time -v`` (or reads the child's ``ru_maxrss``) against
its own SecantusDB server, and prints the peak resident set size.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import orjson  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.builders import client_record, tracos_doc  # noqa: E402
from tests.server import Server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--limit-mb", type=float, default=150.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tracos-memory-"))
    server = Server().start()
    try:
        inbound = work / "in"
        inbound.mkdir()
        for number in range(1, args.n + 1):
            (inbound / f"{number}.json").write_bytes(orjson.dumps(client_record(number)))
        with MongoClient(server.uri) as client:
            collection = client["mem"]["workorders"]
            for first in range(0, args.n, 10_000):
                collection.insert_many(
                    [tracos_doc(args.n + 1 + k) for k in range(first, min(first + 10_000, args.n))]
                )
        env = dict(
            os.environ,
            MONGO_URI=server.uri,
            MONGO_DATABASE="mem",
            DATA_INBOUND_DIR=str(inbound),
            DATA_OUTBOUND_DIR=str(work / "out"),
            PYTHONPATH=str(ROOT / "src"),
        )
        command = [sys.executable, "-m", "tracos_sync", "run"]
        timer = shutil.which("time") or "/usr/bin/time"
        use_time = os.path.exists(timer)
        if use_time:
            command = [timer, "-v", *command]
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            return 1
        if use_time:
            match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
            assert match, proc.stderr[-2000:]
            peak_kb = int(match.group(1))
        else:
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        summary = next(line for line in proc.stderr.splitlines() if "run.summary" in line)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    peak_mb = peak_kb / 1024
    print(f"N={args.n} files + {args.n} documents: {elapsed:.1f} s, peak RSS {peak_mb:.1f} MB")
    print(summary.split("run.summary", 1)[1].strip())
    if peak_mb > args.limit_mb:
        print(f"FAIL: peak RSS over {args.limit_mb} MB")
        return 1
    print(f"OK: peak RSS under {args.limit_mb} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
