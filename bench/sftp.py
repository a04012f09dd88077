"""The SFTP transport against local folders: the same N files in, the same N orders out.

    python bench/sftp.py [--n 2000] [--max-ratio 3.0]

One SecantusDB server and one Debian OpenSSH server on loopback (tests/support/sshd.py; `make
tools tools-ssh`), started here. Each direction runs the CLI as a user does (wall time, process
start included), first with local folders, then with the same folders served over SFTP, on fresh
databases. Prints both times per direction, and the ratio of the runs' own times (the summary's
``seconds``: process start left out, the SSH handshake in); exits 1 when one exceeds
``--max-ratio`` (the issue's bound: SFTP's round trips are pipelined, ``SFTP_PARALLEL_FILES``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import orjson  # noqa: E402

# bench/bench.py: run as a script, this file's folder comes first on the path.
from bench import cli, folders  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from tests.builders import client_record, tracos_doc  # noqa: E402
from tests.server import Server  # noqa: E402
from tests.support.sshd import Sshd, running_sshd  # noqa: E402


def make_files(folder: Path, n: int, give: Sshd | None = None) -> None:
    folder.mkdir(parents=True)
    past = time.time() - 600  # written a while ago: no settle time applies
    for number in range(1, n + 1):
        path = folder / f"{number}.json"
        path.write_bytes(orjson.dumps(client_record(number)))
        os.utime(path, (past, past))
        if give is not None:
            give.give_to_server(path)
    if give is not None:
        give.give_to_server(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--max-ratio", type=float, default=3.0)
    args = parser.parse_args()
    n = args.n
    work = Path(tempfile.mkdtemp(prefix="bench-sftp-"))
    server = Server().start()
    client: MongoClient[dict[str, object]] = MongoClient(server.uri)
    failed = False
    try:
        with running_sshd() as sshd:
            remote = {
                "DATA_INBOUND_DIR": sshd.url("in"),
                "DATA_OUTBOUND_DIR": sshd.url("out"),
                "SFTP_KNOWN_HOSTS": str(sshd.known_hosts),
                "SFTP_KEY_FILE": str(sshd.client_key_file),
            }
            local = folders(work / "in", work / "out")
            make_files(work / "in", n)
            make_files(sshd.served / "in", n, give=sshd)
            for command in ("inbound", "outbound"):
                times, runs = {}, {}
                for where, settings in (("local", local), ("sftp", remote)):
                    db = f"bench_sftp_{command}_{where}"
                    client.drop_database(db)
                    if command == "outbound":
                        client[db]["w"].insert_many([tracos_doc(k) for k in range(1, n + 1)])
                    times[where], summary = cli(command, server.uri, db, settings)
                    runs[where] = float(summary.rpartition("seconds=")[2].split()[0])
                    print(f"{command:8} {where:5} {times[where]:7.2f} s wall  {summary}")
                ratio = runs["sftp"] / runs["local"]
                wall = times["sftp"] / times["local"]
                print(
                    f"{command:8} ratio {ratio:5.2f}x of the runs' own times "
                    f"({wall:.2f}x wall; bound {args.max_ratio:g}x)"
                )
                failed |= ratio > args.max_ratio
    finally:
        client.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
