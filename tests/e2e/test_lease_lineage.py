"""A new lease document for work orders stamped under an older one (the integration renamed,
the lease collection dropped or changed): TracOS edits go out once and are marked synced, the
ERP's files are taken in, with no fence refusal (issue 25, F1 and F3)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, write_json
from tests.conftest import Env
from tests.e2e.test_integrations import folders, write_integrations

Doc = dict[str, Any]


def integrations(env: Env, name: str) -> Path:
    settings = folders(env.root, "acme")
    return write_integrations(
        env.root / f"{name}.toml",
        [{"name": name, "tracos": {"collection": "acme"}, "settings": settings}],
    )


@pytest.mark.parametrize("change", ["renamed", "lease collection dropped", "LEASE_COLLECTION"])
def test_work_orders_stamped_under_an_older_lease_document_are_served_by_a_new_one(
    env: Env, mongo: MongoClient[Doc], change: str
) -> None:
    db = mongo[env.database]
    db["sync_leases"].insert_one(  # an old lineage at epoch 4, free
        {
            "_id": "integration:acme",
            "kind": "integration",
            "name": "acme",
            "holder": None,
            "epoch": 4,
            "since": datetime.now(UTC),
            "expiresAt": datetime.now(UTC),
        }
    )
    write_json(env.root / "acme" / "in" / "1.json", [client_record(7), client_record(9)])
    first = env.cli("--integrations", str(integrations(env, "acme")), "run", LEASES="true")
    assert first.code == 0, first.output
    assert db["acme"].find_one({"number": 7})["syncLease"]["epoch"] == 5
    name, extra = "acme", {}
    if change == "renamed":
        name = "acme-corp"
    elif change == "lease collection dropped":
        db.drop_collection("sync_leases")
    else:
        extra = {"LEASE_COLLECTION": "other_leases"}
    db["acme"].update_one({"number": 7}, {"$set": {"isSynced": False, "title": "edited"}})
    later = client_record(9, summary="changed in the ERP", lastUpdateDate="2024-05-02T12:00:00Z")
    write_json(env.root / "acme" / "in" / "2.json", [client_record(8), later])
    again = env.cli("--integrations", str(integrations(env, name)), "run", LEASES="true", **extra)
    assert again.code == 0, again.output
    assert "lease.lost" not in again.output and "changed_during_export" not in again.output
    assert re.search(r"run\.summary .*inserted=1 updated=1 .*exported=1 .*requeued=0", again.output)
    edited = db["acme"].find_one({"number": 7})
    assert edited["isSynced"] is True and edited["syncLease"]["epoch"] > 5, edited
    assert db["acme"].find_one({"number": 8})["syncLease"]["epoch"] > 5  # taken in
    updated = db["acme"].find_one({"number": 9})
    assert updated["title"] == "changed in the ERP" and updated["syncLease"]["epoch"] > 5
    third = env.cli("--integrations", str(integrations(env, name)), "run", LEASES="true", **extra)
    assert third.code == 0, third.output
    assert re.search(r"run\.summary .*exported=0 .*requeued=0", third.output), third.output
