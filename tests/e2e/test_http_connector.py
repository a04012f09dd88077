"""The HTTP connector end to end: the CLI against a fake ERP server and a real MongoDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, tracos_doc
from tests.conftest import Env
from tracos_sync.connectors.client_erp_http.fake_server import FakeErpState, fake_erp

TOKEN = "erp-t0ken-very-secret"


@pytest.fixture
def erp(env: Env) -> Iterator[FakeErpState]:
    with fake_erp(token=TOKEN) as (url, state):
        env.extra.update(
            CLIENT_CONNECTOR="http",
            CLIENT_API_URL=url,
            CLIENT_API_TOKEN=TOKEN,
            CLIENT_API_PAGE_SIZE="2",
            CLIENT_API_RETRY_SECONDS="5",
        )
        yield state


def test_syncs_both_ways_through_the_api(env: Env, erp: FakeErpState) -> None:
    for n in range(1, 6):
        erp.put(
            client_record(
                n, lastUpdateDate=f"2024-05-0{n}T00:00:00Z", isActive=True, isPending=False
            )
        )
    env.collection.insert_many([tracos_doc(100 + n) for n in range(3)])
    first = env.cli("run")
    assert first.code == 0, first.output
    assert (first.counts()["inserted"], first.counts()["exported"]) == (5, 3)
    assert sorted(r["orderNo"] for r in erp.received) == [100, 101, 102]
    assert env.collection.count_documents({"isSynced": True}) == 8
    assert any("updatedSince=1970-01-01" in r for r in erp.requests)
    second = env.cli("run")
    assert second.code == 0
    assert sum(v for k, v in second.counts().items() if k != "seconds") == 0
    assert any("updatedSince=2024-05-05" in r for r in erp.requests[-3:]), erp.requests[-3:]
    # A record changed in the ERP later is picked up from the watermark.
    erp.put(client_record(2, summary="changed", lastUpdateDate="2024-06-01T00:00:00Z"))
    third = env.cli("inbound")
    assert third.counts()["updated"] == 1
    doc = env.collection.find_one({"number": 2})
    assert doc is not None and doc["title"] == "changed"


def test_retries_honour_retry_after_and_give_up_after_the_budget(
    env: Env, erp: FakeErpState
) -> None:
    env.collection.insert_one(tracos_doc(1))
    erp.fail_next(503, times=2, retry_after=0.3)
    ok = env.cli("outbound")
    assert ok.code == 0, ok.output
    assert "http.retrying" in ok.output
    assert [r["orderNo"] for r in erp.received] == [1]
    env.collection.insert_one(tracos_doc(2))
    erp.fail_next(429, times=100, retry_after=0.5)
    failed = env.cli("outbound", CLIENT_API_RETRY_SECONDS="2")
    assert failed.code == 1, failed.output
    assert env.collection.count_documents({"number": 2, "isSynced": True}) == 0


def test_refused_records_go_to_dead_letters_and_show_in_check(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    env.collection.insert_many([tracos_doc(1), tracos_doc(2)])
    erp.refuse.add(2)
    erp.put(client_record(9, orderNo="nine"))
    result = env.cli("run")
    assert result.code == 0, result.output
    assert (result.counts()["exported"], result.counts()["skipped"]) == (1, 1)
    assert result.counts()["rejected"] == 1
    two = env.collection.find_one({"number": 2})
    assert two is not None and "isSynced" not in two, "refused: not marked synced"
    letters = list(mongo[env.database]["client_dead_letters"].find())
    assert {d["direction"] for d in letters} == {"inbound", "outbound"}
    assert any("locked in the ERP" in p["reason"] for d in letters for p in d["problems"])
    check = env.cli("check")
    assert "client dead letters" in check.stdout and "2 records refused" in check.stdout


def test_token_is_sent_and_never_shown(env: Env, erp: FakeErpState) -> None:
    env.collection.insert_one(tracos_doc(1))
    good = env.cli("run", LOG_LEVEL="DEBUG")
    assert good.code == 0, good.output
    assert TOKEN not in good.output
    bad = env.cli("run", CLIENT_API_TOKEN="wrong-token-value", LOG_LEVEL="DEBUG")
    assert bad.code == 1
    assert "401" in bad.output
    assert "wrong-token-value" not in bad.output and TOKEN not in bad.output


def test_record_updated_while_paging_is_not_lost(env: Env, erp: FakeErpState) -> None:
    for n in range(1, 7):
        erp.put(client_record(n, lastUpdateDate=f"2024-05-0{n}T00:00:00Z"))

    def update_first_record_once(state: FakeErpState) -> None:
        state.after_list.clear()
        state.put(
            client_record(1, summary="updated mid-run", lastUpdateDate="2024-05-03T12:00:00Z")
        )

    erp.after_list.append(update_first_record_once)
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert sorted(d["number"] for d in env.collection.find()) == [1, 2, 3, 4, 5, 6]
    again = env.cli("inbound")
    assert again.code == 0
    one = env.collection.find_one({"number": 1})
    assert one is not None and one["title"] == "updated mid-run"
