"""The ``api`` connector both ways against SAP's own OData v4 server (CAP), through the CLI and a
real MongoDB, with the example's description and a ``[write]`` table: TracOS's new orders
created, a changed one updated with ``If-Match``; our writes read back are not taken for the
ERP's changes, an ERP edit after our write is; an ERP edit racing our write is kept, ours counted
superseded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

from tests.builders import tracos_doc
from tests.conftest import Env
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

MINUTE = timedelta(minutes=1)
WRITE = """
[integration.settings.write]
path = "MaintenanceOrder('{number}')"
method = "PATCH"
create = "MaintenanceOrder"
version = { source = "record", field = "@odata.etag" }
"""


def writable(env: Env) -> Path:
    path = integrations(env)
    path.write_text(path.read_text() + WRITE)
    return path


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
