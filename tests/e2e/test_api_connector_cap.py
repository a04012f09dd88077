"""The ``api`` connector end to end: SAP's own OData v4 server (CAP, S/4HANA's maintenance
order) read into TracOS by configuration alone (examples/integrations-api.toml and
examples/mappings/s4-maintenance.toml), through the CLI and a real MongoDB: new and changed
orders, nothing read twice, a dry run that changes nothing, the server killed and restarted in
the middle of a pass, and 5,000 orders."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.builders import tracos_doc
from tests.conftest import Env, Result
from tests.server import ROOT
from tests.support.cap import CapServer, batch_creates
from tests.support.watching import wait_until

EXAMPLE = ROOT / "examples/integrations-api.toml"
MAPPING = ROOT / "examples/mappings/s4-maintenance.toml"
COLLECTION = "s4_workorders"


def integrations(env: Env, *, read_only: bool = False, **read: Any) -> Path:
    """The example's integration (both ways; ``read_only``: without its ``[write]`` table), its
    mapping found from anywhere and ``read`` keys changed."""
    text = EXAMPLE.read_text().replace(
        'mapping = "examples/mappings/s4-maintenance.toml"', f'mapping = "{MAPPING}"'
    )
    if read_only:
        text = text.split("\n[integration.settings.write]")[0]
    for key, value in read.items():
        text, found = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert found == 1, key
    path = env.root / "integrations-api.toml"
    path.write_text(text)
    return path


def run(env: Env, cap: CapServer, path: Path, *args: str, timeout: float = 120) -> Result:
    return env.cli("--integrations", str(path), *args, timeout=timeout, S4_URL=cap.url)


def create_orders(cap: CapServer, numbers: range, **fields: Any) -> None:
    """Orders in ``$batch`` change sets of 100 (each one transaction: one stamp shared)."""
    with httpx.Client(timeout=60) as client:
        listed = list(numbers)
        for start in range(0, len(listed), 100):
            bodies: list[dict[str, object]] = [
                {"MaintenanceOrder": f"{n:012d}", "MaintenanceOrderDesc": f"order {n}", **fields}
                for n in listed[start : start + 100]
            ]
            answer = client.post(f"{cap.url}/$batch", json=batch_creates(bodies))
            assert answer.status_code == 200, answer.text


def change_order(cap: CapServer, number: int, **fields: Any) -> None:
    """An edit in the ERP, as SAP takes one: with the order's ETag (CAP answers 428 without)."""
    url = cap.order_url(f"{number:012d}")
    etag = httpx.get(url, timeout=30).json()["@odata.etag"]
    answer = httpx.patch(url, json=fields, headers={"If-Match": etag}, timeout=30)
    assert answer.status_code == 200, answer.text


def orders(env: Env, mongo: MongoClient[Any]) -> dict[int, dict[str, Any]]:
    return {doc["number"]: doc for doc in mongo[env.database][COLLECTION].find()}


def counts(result: Result) -> dict[str, int]:
    assert result.code == 0, result.output
    return result.counts()


def test_new_and_changed_orders_are_read_once_each(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    create_orders(cap, range(1, 151))  # 1-100 share one stamp: pages of 40 split it
    path = integrations(env, page_size=40)
    dry = counts(run(env, cap, path, "run", "--dry-run"))
    assert dry["inserted"] == 150
    assert orders(env, mongo) == {}
    assert mongo[env.database]["client_sync_state"].count_documents({}) == 0

    assert counts(run(env, cap, path, "run"))["inserted"] == 150
    change_order(cap, 5, MaintenanceOrderDesc="Replace pump seal", MaintenanceProcessingPhase="3")
    change_order(cap, 6, IsMarkedForDeletion=True)
    create_orders(cap, range(151, 152))
    second = counts(run(env, cap, path, "run"))
    assert (second["inserted"], second["updated"], second["stale"]) == (1, 2, 0)
    held = orders(env, mongo)
    assert len(held) == 151
    assert held[5]["title"] == "Replace pump seal" and held[5]["status"] == "in_progress"
    assert held[6]["deleted"] is True and held[7]["deleted"] is False
    third = counts(run(env, cap, path, "run"))
    assert (third["inserted"], third["updated"], third["stale"]) == (0, 0, 0)
    check = run(env, cap, path, "check")
    assert check.code == 0, check.output
    assert "MaintenanceOrder answers" in check.output and ", key 151" in check.output


def test_a_read_only_api_refuses_outbound_loudly_and_loses_nothing(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    """Orders read from the ERP are in sync (no outbound); one made in TracOS cannot go out
    without a [write] table: the run fails saying so, the order stays to send, inbound is done."""
    create_orders(cap, range(1, 4))
    path = integrations(env, read_only=True)
    assert counts(run(env, cap, path, "run"))["inserted"] == 3
    mongo[env.database][COLLECTION].insert_one(tracos_doc(900))
    result = run(env, cap, path, "run")
    assert result.code == 1, result.output
    assert "1 work orders cannot go out" in result.output and "no [write] table" in result.output
    assert not orders(env, mongo)[900].get("isSynced")
    assert counts(run(env, cap, path, "inbound"))["inserted"] == 0  # inbound alone runs


def test_cap_killed_and_restarted_in_the_middle_of_a_pass_loses_nothing(
    env: Env, own_cap: CapServer, mongo: MongoClient[Any]
) -> None:
    """Small pages (10, CAP answers them) make the pass long enough to kill the server in it;
    the run retries within its budget and goes on from the last (time, key) read."""
    total = 2_000
    create_orders(own_cap, range(1, total + 1))
    path = integrations(env, page_size=10)
    process = env.popen("--integrations", str(path), "run", S4_URL=own_cap.url)
    collection = mongo[env.database][COLLECTION]
    wait_until(lambda: collection.count_documents({}) >= 50, process, 60)
    own_cap.kill()
    killed_at = collection.count_documents({})
    assert process.poll() is None and killed_at < total  # in the middle of the pass
    own_cap.start()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stdout + stderr
    assert "http.retrying" in stdout + stderr
    assert sorted(orders(env, mongo)) == list(range(1, total + 1))
    again = counts(run(env, own_cap, path, "run"))
    assert (again["inserted"], again["updated"]) == (0, 0)


@pytest.mark.slow
def test_5000_orders_are_read(env: Env, cap: CapServer, mongo: MongoClient[Any]) -> None:
    create_orders(cap, range(1, 5_001))
    path = integrations(env)
    started = time.perf_counter()
    first = counts(run(env, cap, path, "run"))
    seconds = time.perf_counter() - started
    assert first["inserted"] == 5_000
    assert len(orders(env, mongo)) == 5_000
    print(f"5,000 orders read from CAP in {seconds:.2f} s (the whole CLI run)")
