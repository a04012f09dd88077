"""``tracos-sync watch`` with the ``api`` connector both ways against SAP's own OData v4 server
(CAP), through the CLI and a real MongoDB: new and changed orders each way while it runs; our
own writes, stamped by CAP, read back on the next sweep as echoes (one guard shared by every
sweep), and nothing bouncing between the systems across many sweeps; an ERP edit made right
after our write read as a change. What CAP was asked to write is checked on the server, from its
change documents (``CapServer.writes``)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.builders import tracos_doc
from tests.conftest import Env
from tests.e2e.test_api_connector_cap import (
    COLLECTION,
    change_order,
    create_orders,
    integrations,
    orders,
)
from tests.e2e.test_api_connector_cap_write import edit_in_tracos
from tests.support.cap import CapServer
from tests.support.watching import metrics_or_empty, stop, wait_until, watch_with_metrics

SWEEPS = 10  # sweeps watched for a bounce once everything is in sync
OUTCOME = re.compile(
    r'^tracos_sync_outcomes_total\{integration="s4",outcome="(\w+)"\} (\S+)$', re.MULTILINE
)
SWEPT = re.compile(r'^tracos_sync_cycle_seconds_count\{integration="s4"\} (\S+)$', re.MULTILINE)


def outcomes(port: int) -> dict[str, int]:
    """The watch's counts so far (its metrics page), every sweep summed; not ``files`` (pages
    read), which depends on how the edits fell into sweeps."""
    counted = OUTCOME.findall(metrics_or_empty(port))
    return {name: int(float(n)) for name, n in counted if name != "files"}


def sweeps(port: int) -> int:
    found = SWEPT.search(metrics_or_empty(port))
    return int(float(found.group(1))) if found else 0


def descriptions(cap: CapServer) -> dict[int, str]:
    """Every order the ERP holds: its description, by TracOS number."""
    answer = httpx.get(f"{cap.orders_url}?$top=100", timeout=30)
    assert answer.status_code == 200, answer.text
    return {int(r["MaintenanceOrder"]): r["MaintenanceOrderDesc"] for r in answer.json()["value"]}


def titles(env: Env, mongo: MongoClient[Any]) -> dict[int, str]:
    return {n: doc["title"] for n, doc in orders(env, mongo).items()}


def all_synced(env: Env, mongo: MongoClient[Any]) -> bool:
    return all(doc.get("isSynced") for doc in orders(env, mongo).values())


def writes(cap: CapServer) -> Counter[tuple[int, str]]:
    return Counter({(int(key), kind): n for (key, kind), n in cap.writes().items()})


@pytest.mark.slow
def test_watch_syncs_both_ways_and_our_writes_never_bounce(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    tracos = mongo[env.database][COLLECTION]
    create_orders(cap, range(1, 4))  # the ERP's
    tracos.insert_many([tracos_doc(900), tracos_doc(901)])  # TracOS's
    path = integrations(env)
    proc, port = watch_with_metrics(
        env, "--integrations", str(path), S4_URL=cap.url, WATCH_INTERVAL="0.2"
    )

    def changed() -> dict[str, int]:
        """The counts but ``stale``: an ERP edit made while a sweep asked for its page may be
        stamped after that moment, and is then read again next sweep (the watermark never
        passes the moment a page was asked for), as stale."""
        return {name: n for name, n in outcomes(port).items() if name != "stale"}

    def no_bounce(expected: dict[str, int]) -> None:
        """The counts are ``expected`` (the others 0) and everything is in sync; then
        ``SWEEPS`` sweeps more, and nothing read, applied or written meanwhile."""
        try:
            wait_until(lambda: changed() == expected and all_synced(env, mongo), proc, 60)
        except AssertionError as exc:
            raise AssertionError(f"counts {outcomes(port)}, expected {expected}") from exc
        at, counted, written = sweeps(port), outcomes(port), writes(cap)
        wait_until(lambda: sweeps(port) >= at + SWEEPS, proc, 60)
        assert outcomes(port) == counted
        assert writes(cap) == written

    try:
        # Both ways at once: the ERP's orders in TracOS, TracOS's created in the ERP; our two
        # creates read back on the next sweep are echoes, and stay so sweep after sweep.
        first = {"inserted": 3, "exported": 2, "echoes": 2}
        no_bounce(first)
        assert titles(env, mongo)[2] == "order 2"
        assert descriptions(cap)[900] == "TracOS order 900"

        # New and changed orders each way while it runs.
        create_orders(cap, range(4, 5))
        change_order(cap, 2, MaintenanceOrderDesc="Replace pump seal")
        tracos.insert_one(tracos_doc(902))
        edit_in_tracos(env, mongo, 900, "Check the bearings")
        second = {"inserted": 4, "updated": 1, "exported": 4, "echoes": 4}
        no_bounce(second)
        assert titles(env, mongo)[2] == "Replace pump seal" and 4 in titles(env, mongo)
        held = descriptions(cap)
        assert (held[900], held[902]) == ("Check the bearings", "TracOS order 902")

        # An ERP edit made right after our write, before or after the sweep that reads our write
        # back: a change either way, never taken for our echo.
        edit_in_tracos(env, mongo, 901, "Replace the filter")
        wait_until(lambda: descriptions(cap)[901] == "Replace the filter", proc, 60)
        change_order(cap, 901, MaintenanceOrderDesc="Filter replaced in the ERP")
        wait_until(lambda: titles(env, mongo)[901] == "Filter replaced in the ERP", proc, 60)
        # Our write's echo is read when a sweep came between the two writes, not otherwise.
        echoes = outcomes(port)["echoes"]
        assert echoes in (4, 5)
        no_bounce({"inserted": 4, "updated": 2, "exported": 5, "echoes": echoes})
    finally:
        result, _ = stop(proc)
        print(result.output)  # shown when the test fails
    assert result.code == 0, result.output
    assert "Traceback" not in result.output

    # On the server: each of our orders created once, updated once per TracOS edit; nothing of
    # the ERP's own written back.
    ours = {(n, "CREATE"): 1 for n in (900, 901, 902)} | {(900, "UPDATE"): 1, (901, "UPDATE"): 2}
    theirs = {(n, "CREATE"): 1 for n in range(1, 5)} | {(2, "UPDATE"): 1}
    assert writes(cap) == Counter(ours | theirs)
    assert descriptions(cap)[901] == "Filter replaced in the ERP"
