"""``make demo-http``: the HTTP connector end to end on this machine, in one command.

A fake ERP API (with sample work orders, one ambiguous and one dated in 2099) and an embedded
local server (with sample TracOS work orders, data in ``.data/demo-http/db``); one
``tracos-sync run --embedded`` with ``CLIENT_CONNECTOR=http`` syncs both ways, ``check`` shows the
watermark and the dead letters; then both sides are written out as JSON files to look at.
Everything lives under ``.data/demo-http/`` (or ``DEMO_DIR``) and is started afresh on each run
of the demo.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pymongo import AsyncMongoClient

from tracos_sync import logs
from tracos_sync.connectors.client_erp_http.fake_server import FakeErpState, fake_erp
from tracos_sync.embedded import embedded_server
from tracos_sync.mapping import builtin_mapping
from tracos_sync.seed import client_orders, tracos_work_orders
from tracos_sync.tracos.repository import MongoWorkOrderRepository
from tracos_sync.tracos.retry import Retrier

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(os.environ.get("DEMO_DIR", ".data/demo-http"))
TOKEN = "demo-token"
LOCKED = 5  # the ERP refuses changes to this TracOS work order (an outbound dead letter)


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def tracos_sync(*args: str, env: dict[str, str]) -> int:
    """Run the CLI as a user would, showing the command."""
    shown = {k: v for k, v in env.items() if k.startswith(("CLIENT_", "MONGO_", "REPORT_"))}
    words = [f"{k}={shlex.quote(v)}" for k, v in shown.items()] + [".venv/bin/tracos-sync", *args]
    print("$ " + " ".join(words), flush=True)
    command = [sys.executable, "-m", "tracos_sync", *args]
    return subprocess.run(command, env={**os.environ, **env}, check=False).returncode


def erp_records(now: datetime) -> list[dict[str, Any]]:
    records = [builtin_mapping().encode(order) for order in client_orders(now)]
    ambiguous = {**records[0], "orderNo": 198, "summary": "Two statuses", "isDone": True}
    records.append({**ambiguous, "isPending": True})
    records.append({**records[1], "orderNo": 199, "summary": "Dated by a clock gone wrong"})
    records[-1]["lastUpdateDate"] = "2099-01-01T00:00:00.000Z"
    return records


async def seed_tracos(database: str, collection: str) -> int:
    async with embedded_server(DEMO / "db") as uri:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
        repository = MongoWorkOrderRepository(client, database, collection, Retrier(10))
        try:
            return await repository.seed(tracos_work_orders(datetime.now(UTC)))
        finally:
            await repository.close()


async def write_out(erp: FakeErpState, database: str, collection: str) -> None:
    """Both sides as files: TracOS's work orders, the dead letters, the ERP's work orders."""
    async with embedded_server(DEMO / "db") as uri:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
        try:
            db = client[database]
            async for doc in db[collection].find({}, {"_id": 0}):
                dump(DEMO / "tracos" / f"{doc['number']}.json", doc)
            letters = [doc async for doc in db["client_dead_letters"].find({})]
            dump(DEMO / "dead-letters.json", letters)
        finally:
            await client.close()
    with erp.lock:
        for number, record in erp.records.items():
            dump(DEMO / "erp" / f"{number}.json", record)


def dump(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str) + b"\n")


def main() -> int:
    os.chdir(ROOT)
    logs.configure()
    shutil.rmtree(DEMO, ignore_errors=True)
    database, collection = "tractian", "workorders"
    with fake_erp(token=TOKEN) as (url, erp):
        for record in erp_records(datetime.now(UTC)):
            erp.put(record)
        erp.refuse.add(LOCKED)
        say(f"A fake ERP at {url} holds {len(erp.records)} work orders (2 of them bad)")
        seeded = asyncio.run(seed_tracos(database, collection))
        say(f"TracOS (embedded server, data in {DEMO}/db) holds {seeded} work orders")
        env = {
            "CLIENT_CONNECTOR": "http",
            "CLIENT_API_URL": url,
            "CLIENT_API_TOKEN": TOKEN,
            "MONGO_EMBEDDED_DIR": str(DEMO / "db"),
            "REPORT_PATH": str(DEMO / "report.json"),
        }
        say("One sync, both ways")
        code = tracos_sync("run", "--embedded", env=env)
        say("What check says now")
        tracos_sync("check", "--embedded", env=env)
        asyncio.run(write_out(erp, database, collection))
        received = len(erp.received)
    say("Where to look")
    print(
        f"""  {DEMO}/tracos/            TracOS's work orders after the sync (101-110 from the ERP)
  {DEMO}/erp/               the ERP's work orders (TracOS sent {received} of its 1-10)
  {DEMO}/dead-letters.json  what was refused, and why: the ERP's 198 (two statuses) and 199
                                     (dated 2099: the watermark did not follow it), and TracOS's
                                     {LOCKED}, locked in the ERP (it stays unsynced, offered again)
  {DEMO}/report.json        the run's counts and durations
Try it by hand: docs/tutorials/api-customer.md."""
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
