"""SPEC §8 "Clocks disagree", outbound: a TracOS work order dated beyond now +
CLIENT_CLOCK_SKEW_SECONDS (a typo'd year) is never delivered, in any connector, so that its
correction is not outranked by it on the client's side; a client copy already dated that far
ahead (superseding every version TracOS has) is named at every run, not left silent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env, Result
from tracos_sync.connectors.client_erp_http.fake_server import FakeErpState, fake_erp

TYPO = datetime(2205, 6, 1, tzinfo=UTC)


def warnings(result: Result, event: str) -> list[str]:
    return [line for line in result.output.splitlines() if event in line]


def test_a_tracos_order_dated_centuries_ahead_is_skipped_until_its_date_is_fixed(
    env: Env,
) -> None:
    within = datetime.now(UTC) + timedelta(minutes=2)
    env.collection.insert_many(
        [
            tracos_doc(1, updatedAt=TYPO, title="typo year"),
            tracos_doc(2),
            tracos_doc(3, updatedAt=within),  # ahead, but within the allowance: goes out
        ]
    )
    first = env.cli("outbound")
    assert first.code == 0, first.output
    assert (first.counts()["exported"], first.counts()["skipped"]) == (2, 1), first.output
    assert not (env.outbound / "1.json").exists()
    [warning] = warnings(first, "outbound.document_skipped")
    assert "2205-06-01" in warning and "CLIENT_CLOCK_SKEW_SECONDS" in warning, warning
    doc = env.collection.find_one({"number": 1})
    assert doc is not None and doc.get("isSynced") is not True
    # TracOS fixes the year and the title: the fix goes out, nothing holds it back.
    env.collection.update_one(
        {"number": 1},
        {"$set": {"updatedAt": datetime.now(UTC), "title": "fixed", "isSynced": False}},
    )
    fixed = env.cli("outbound")
    assert fixed.code == 0, fixed.output
    counts = fixed.counts()
    assert (counts["exported"], counts["skipped"], counts["superseded"]) == (1, 0, 0), fixed.output
    assert read_json(env.outbound / "1.json")["summary"] == "fixed"
    doc = env.collection.find_one({"number": 1})
    assert doc is not None and doc["isSynced"] is True


def test_the_outbound_allowance_is_the_same_setting(env: Env) -> None:
    env.collection.insert_one(tracos_doc(1, updatedAt=datetime.now(UTC) + timedelta(minutes=2)))
    result = env.cli("outbound", CLIENT_CLOCK_SKEW_SECONDS="30")
    assert result.code == 0, result.output
    assert result.counts()["skipped"] == 1 and not (env.outbound / "1.json").exists()


def test_a_client_copy_dated_ahead_is_named_at_every_run_until_removed(env: Env) -> None:
    env.collection.insert_many([tracos_doc(1), tracos_doc(2)])
    # 1: dated ahead (by hand, or by a version without the outbound rule); 2: only newer.
    env.outbound.mkdir(parents=True, exist_ok=True)
    write_json(env.outbound / "1.json", client_record(1, lastUpdateDate="2205-06-01T00:00:00Z"))
    write_json(env.outbound / "2.json", client_record(2, lastUpdateDate="2024-06-01T00:00:00Z"))
    for _ in range(2):
        result = env.cli("outbound")
        assert result.code == 0, result.output
        assert result.counts()["superseded"] == 2, result.output
        [warning] = warnings(result, "outbound.client_copy_ahead")
        assert "[1]" in warning and "2205-06-01" in warning, warning
        assert "remove or fix the client's copy" in warning, warning
    # The recovery: the client's copy removed, TracOS's version goes out.
    (env.outbound / "1.json").unlink()
    recovered = env.cli("outbound")
    assert recovered.code == 0, recovered.output
    assert recovered.counts()["exported"] == 1, recovered.output
    assert not warnings(recovered, "outbound.client_copy_ahead")


@pytest.fixture
def erp(env: Env) -> Iterator[FakeErpState]:
    with fake_erp() as (url, state):
        env.extra.update(CLIENT_CONNECTOR="http", CLIENT_API_URL=url, CLIENT_API_PAGE_SIZE="2")
        yield state


def test_http_never_sends_a_tracos_order_dated_ahead(env: Env, erp: FakeErpState) -> None:
    env.collection.insert_many([tracos_doc(1, updatedAt=TYPO), tracos_doc(2)])
    result = env.cli("outbound")
    assert result.code == 0, result.output
    assert (result.counts()["exported"], result.counts()["skipped"]) == (1, 1), result.output
    assert [body["orderNo"] for body in erp.received] == [2]


def test_http_an_erp_copy_dated_ahead_is_named(env: Env, erp: FakeErpState) -> None:
    env.collection.insert_one(tracos_doc(1))
    erp.put_future(client_record(1))
    result = env.cli("run")
    assert result.counts()["superseded"] == 1, result.output
    [warning] = warnings(result, "outbound.client_copy_ahead")
    assert "[1]" in warning and "2099-01-01" in warning, warning
    assert not erp.received
