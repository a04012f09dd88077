"""The HTTP connector against what a hostile tester found (issue 11, second round): each test
goes through the CLI against the fake ERP, and fails without its fix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import MongoClient

from tests.builders import client_record, tracos_doc
from tests.conftest import Env
from tests.e2e.test_http_connector import erp, letters
from tracos_sync.connectors.client_erp_http.fake_server import FAR_FUTURE, FakeErpState

__all__ = ["erp"]  # the fixture

NEWER = "2024-06-01T00:00:00.000Z"  # than tracos_doc's updatedAt (2024-05-01T12:00Z)
LATER = datetime(2024, 7, 1, tzinfo=UTC)


# -- 1. outbound never writes an older TracOS copy over a newer ERP record -------------------


def test_outbound_does_not_overwrite_a_newer_erp_record(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    erp.put(client_record(1, summary="newer in the ERP", lastUpdateDate=NEWER))
    env.collection.insert_one(tracos_doc(1))
    result = env.cli("outbound")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["superseded"], counts["exported"], counts["skipped"]) == (1, 0, 0)
    assert erp.records["1"]["summary"] == "newer in the ERP"
    assert erp.records["1"]["lastUpdateDate"] == NEWER
    assert letters(env, mongo) == [], "a newer ERP version is not a refusal"
    doc = env.collection.find_one({"number": 1})
    assert doc is not None and not doc.get("isSynced"), "not marked synced"
    # The newer ERP copy then comes in, and TracOS's edit after it goes out.
    inbound = env.cli("inbound")
    assert inbound.counts()["updated"] == 1, inbound.output
    env.collection.update_one(
        {"number": 1}, {"$set": {"title": "edited later", "isSynced": False, "updatedAt": LATER}}
    )
    again = env.cli("outbound")
    assert again.counts()["exported"] == 1, again.output
    assert erp.records["1"]["summary"] == "edited later"


def test_run_never_puts_an_older_copy_over_one_inbound_refused(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    """The ERP's newer copy is refused inbound (future-dated) in the same run: outbound does
    not send the older TracOS version over it, even to an ERP that ignores the 409 contract."""
    erp.unconditional_puts = True
    erp.put(client_record(1, summary="ERP copy", lastUpdateDate=FAR_FUTURE))
    env.collection.insert_one(tracos_doc(1))
    env.collection.insert_one(tracos_doc(2))
    result = env.cli("run")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["rejected"], counts["superseded"], counts["exported"]) == (1, 1, 1)
    assert [r["orderNo"] for r in erp.received] == [2]
    assert erp.records["1"]["summary"] == "ERP copy"
    [letter] = letters(env, mongo)
    assert letter["direction"] == "inbound"
