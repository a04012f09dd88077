"""The ``api`` connector both ways against SAP's own OData v4 server (CAP), through the CLI and a
real MongoDB, with the example's description and its ``[write]`` table: TracOS's new orders
created, a changed one updated with ``If-Match``; our writes read back are not taken for the
ERP's changes (counted ``echoes``), an ERP edit after our write is; an ERP edit racing our write
is kept, ours counted superseded; an ERP edit that puts back the title of our first write is
applied; with the ERP's clock a minute ahead, a record read again is not applied over a TracOS
edit, and a minute behind, an ERP edit after our write is applied; our writes known for ours by a
new process after CAP restarts; 5,000 orders written once each (CAP's change documents), read
back across a CAP kill mid-paging. ``watch`` both ways: test_api_connector_cap_watch.py."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from tests.builders import tracos_doc
from tests.conftest import Env, Result
from tests.e2e.test_api_connector_cap import (
    COLLECTION,
    change_order,
    counts,
    create_orders,
    integrations,
    orders,
    run,
)
from tests.e2e.test_clocks import shifted
from tests.support.cap import CapServer
from tests.support.watching import wait_until

MINUTE = timedelta(minutes=1)


def writable(env: Env) -> Path:
    """The example's integration, which writes (its ``[write]`` table)."""
    return integrations(env)


def in_cap(cap: CapServer, number: int) -> dict[str, Any]:
    answer = httpx.get(cap.order_url(f"{number:012d}"), timeout=30)
    assert answer.status_code == 200, answer.text
    record: dict[str, Any] = answer.json()
    return record


def edit_in_tracos(env: Env, mongo: MongoClient[Any], number: int, title: str) -> None:
    """A TracOS edit, made now: later than what the ERP holds, earlier than its next edit.
    Unsynced, as TracOS leaves an order it changed: outbound sends it."""
    mongo[env.database][COLLECTION].update_one(
        {"number": number},
        {"$set": {"title": title, "updatedAt": datetime.now(UTC)}, "$unset": {"isSynced": ""}},
    )


def test_tracos_orders_go_to_the_erp_and_our_writes_do_not_come_back_as_changes(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    path = writable(env)
    create_orders(cap, range(1, 4))
    assert counts(run(env, cap, path, "run"))["inserted"] == 3
    tracos = mongo[env.database][COLLECTION]
    tracos.insert_many([tracos_doc(900), tracos_doc(901)])
    edit_in_tracos(env, mongo, 2, "Replace pump seal")

    first = counts(run(env, cap, path, "run"))
    assert (first["inserted"], first["updated"]) == (0, 0)
    assert first["exported"] == 3, first
    assert in_cap(cap, 900)["MaintenanceOrderDesc"] == "TracOS order 900"
    assert in_cap(cap, 2)["MaintenanceOrderDesc"] == "Replace pump seal"  # PATCH with If-Match
    assert all(orders(env, mongo)[n].get("isSynced") for n in (2, 900, 901))

    # CAP stamped our three writes: read back, they are ours, not the ERP's changes.
    again = counts(run(env, cap, path, "run"))
    assert (again["inserted"], again["updated"], again["stale"], again["exported"]) == (0, 0, 0, 0)
    assert again["echoes"] == 3  # shown: the operator sees what was read and why nothing moved

    # An ERP edit after our write is a change.
    change_order(cap, 900, MaintenanceOrderDesc="Fixed in the ERP")
    edited = counts(run(env, cap, path, "run"))
    assert (edited["updated"], edited["exported"]) == (1, 0)
    assert orders(env, mongo)[900]["title"] == "Fixed in the ERP"


def test_an_erp_edit_racing_our_write_is_kept_and_ours_superseded(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    path = writable(env)
    mongo[env.database][COLLECTION].insert_one(tracos_doc(902))
    assert counts(run(env, cap, path, "outbound"))["exported"] == 1
    # TracOS changes the order, and the ERP changes it too before our write goes: our write is
    # conditional on the version our last write got back, which the ERP's edit replaced.
    edit_in_tracos(env, mongo, 902, "TracOS's title")
    change_order(cap, 902, MaintenanceOrderDesc="The ERP's title")
    raced = counts(run(env, cap, path, "outbound"))
    assert (raced["exported"], raced["superseded"]) == (0, 1), raced
    assert in_cap(cap, 902)["MaintenanceOrderDesc"] == "The ERP's title"
    assert not orders(env, mongo)[902].get("isSynced")
    # The ERP's edit, later than TracOS's, comes in as a change.
    read = counts(run(env, cap, path, "inbound"))
    assert read["updated"] == 1
    assert orders(env, mongo)[902]["title"] == "The ERP's title"


def test_an_erp_edit_that_puts_back_what_we_wrote_earlier_is_applied(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    """The hostile tester's first finding, against CAP's own ETags: our create, then our update,
    then an ERP user puts the first title back. Its content is our first write's, its version
    its own: a change, applied."""
    path = writable(env)
    mongo[env.database][COLLECTION].insert_one(tracos_doc(903, title="Pump seal"))
    assert counts(run(env, cap, path, "run"))["exported"] == 1
    edit_in_tracos(env, mongo, 903, "Pump seal, replaced")
    assert counts(run(env, cap, path, "run"))["exported"] == 1
    assert in_cap(cap, 903)["MaintenanceOrderDesc"] == "Pump seal, replaced"
    change_order(cap, 903, MaintenanceOrderDesc="Pump seal")
    back = counts(run(env, cap, path, "run"))
    assert (back["updated"], back["exported"]) == (1, 0), back
    assert orders(env, mongo)[903]["title"] == "Pump seal"
    assert orders(env, mongo)[903]["isSynced"] is True


def test_with_the_erp_clock_ahead_a_record_read_again_is_not_applied_over_a_tracos_edit(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    """Our clock a minute behind CAP's (the ERP's ahead, within the allowance): an order CAP
    stamped is read every pass until our clock passes it. Read again after a TracOS edit (dated
    by our clock, before CAP's stamp), it is counted stale, not applied over the edit, and the
    edit goes to CAP."""
    path = writable(env)
    create_orders(cap, range(910, 911))

    def behind(*args: str) -> dict[str, int]:
        return counts(shifted(env, -60, "--integrations", str(path), *args, S4_URL=cap.url))

    assert behind("run")["inserted"] == 1
    mongo[env.database][COLLECTION].update_one(
        {"number": 910},
        {
            "$set": {"title": "Retitled in TracOS", "updatedAt": datetime.now(UTC) - MINUTE},
            "$unset": {"isSynced": ""},
        },
    )
    again = behind("run")
    assert (again["updated"], again["stale"], again["exported"]) == (0, 1, 1), again
    assert in_cap(cap, 910)["MaintenanceOrderDesc"] == "Retitled in TracOS"
    assert orders(env, mongo)[910]["title"] == "Retitled in TracOS"


def test_with_the_erp_clock_behind_an_erp_edit_after_our_write_is_applied(
    env: Env, cap: CapServer, mongo: MongoClient[Any]
) -> None:
    """Our clock a minute ahead of CAP's (the ERP's behind): a CAP edit made after our write is
    stamped before the TracOS edit we wrote. It was made after our write all the same: applied,
    not counted stale."""
    path = writable(env)
    tracos = mongo[env.database][COLLECTION]
    tracos.insert_one(tracos_doc(911, title="Chiller", updatedAt=datetime.now(UTC) + MINUTE))

    def ahead(*args: str) -> dict[str, int]:
        return counts(shifted(env, 60, "--integrations", str(path), *args, S4_URL=cap.url))

    assert ahead("run")["exported"] == 1
    tracos.update_one(
        {"number": 911},
        {"$set": {"status": "completed", "updatedAt": datetime.now(UTC) + MINUTE}},
    )
    tracos.update_one({"number": 911}, {"$unset": {"isSynced": ""}})
    assert ahead("run")["exported"] == 1
    change_order(cap, 911, MaintenanceOrderDesc="Chiller - replace filter too")
    edited = ahead("run")
    assert (edited["updated"], edited["stale"], edited["exported"]) == (1, 0, 0), edited
    assert orders(env, mongo)[911]["title"] == "Chiller - replace filter too"
    assert orders(env, mongo)[911]["status"] == "completed"


def test_our_writes_are_known_for_ours_when_cap_restarts_before_the_next_read(
    env: Env, own_cap: CapServer, mongo: MongoClient[Any]
) -> None:
    """The guard is in the connector state: a new process, after a restart of the ERP, knows
    the orders it reads back for the ones the last process wrote."""
    path = writable(env)
    mongo[env.database][COLLECTION].insert_many([tracos_doc(n) for n in range(900, 905)])
    assert counts(run(env, own_cap, path, "outbound"))["exported"] == 5
    own_cap.restart()
    again = counts(run(env, own_cap, path, "run"))
    assert (again["inserted"], again["updated"], again["stale"]) == (0, 0, 0), again
    assert (again["echoes"], again["exported"]) == (5, 0), again
    assert own_cap.writes() == Counter({(f"{n:012d}", "CREATE"): 1 for n in range(900, 905)})


@pytest.mark.slow
def test_5000_orders_go_out_once_each_and_come_back_as_echoes_across_a_restart(
    env: Env, own_cap: CapServer, mongo: MongoClient[Any]
) -> None:
    """5,000 TracOS orders created in the ERP by one ``run``, each written once (the server's
    change documents say so); read back by the next ``run`` in pages of 10 with CAP killed and
    started again in the middle of the pass: all 5,000 are our echoes, none applied, none
    written again."""
    total = 5_000
    tracos = mongo[env.database][COLLECTION]
    tracos.insert_many([tracos_doc(n) for n in range(1, total + 1)])
    started = time.perf_counter()
    out = counts(run(env, own_cap, integrations(env), "run", timeout=600))
    seconds = time.perf_counter() - started
    assert (out["exported"], out["superseded"], out["rejected"]) == (total, 0, 0), out
    created = Counter({(f"{n:012d}", "CREATE"): 1 for n in range(1, total + 1)})
    assert own_cap.writes() == created
    assert tracos.count_documents({"isSynced": True}) == total
    print(f"5,000 orders written to CAP in {seconds:.1f} s (the whole CLI run)")

    path = integrations(env, page_size=10)
    process = env.popen("--integrations", str(path), "run", S4_URL=own_cap.url)
    state = mongo[env.database]["client_sync_state"]
    mark = {"_id": f"declarative_http:{own_cap.orders_url}"}
    wait_until(lambda: (state.find_one(mark) or {}).get("afterOrderNo", 0) >= 500, process, 120)
    own_cap.kill()
    assert process.poll() is None and state.find_one(mark)["afterOrderNo"] < total
    own_cap.start()
    stdout, stderr = process.communicate(timeout=300)
    back = Result(process.returncode, stdout, stderr)
    assert "http.retrying" in back.output
    read = counts(back)
    assert (read["inserted"], read["updated"], read["stale"], read["exported"]) == (0, 0, 0, 0)
    assert read["echoes"] == total, read
    assert own_cap.writes() == created
