"""The HTTP connector against what a hostile tester found (issue 11, second round): each test
goes through the CLI against the fake ERP, and fails without its fix."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import MongoClient

from tests.builders import client_record, tracos_doc
from tests.conftest import Env
from tests.e2e.test_http_connector import assert_secret_absent, erp, letters
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


def test_run_never_puts_an_older_copy_over_one_the_mapping_refused(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    """The ERP's newer copy does not decode (a field of the wrong type) but its key and last
    update can be read: outbound does not overwrite it with TracOS's older version either."""
    erp.unconditional_puts = True
    erp.put(client_record(1, summary="ERP copy", isDone="yes", lastUpdateDate=NEWER))
    env.collection.insert_one(tracos_doc(1))
    result = env.cli("run")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["rejected"], counts["superseded"], counts["exported"]) == (1, 1, 0)
    assert erp.received == [] and erp.records["1"]["summary"] == "ERP copy"
    [letter] = letters(env, mongo)
    assert letter["direction"] == "inbound"


# -- 2, 3. keyset paging: no offsets, and a group at one instant never stops inbound -----------


def test_a_record_moving_forward_mid_group_does_not_hide_its_neighbour(
    env: Env, erp: FakeErpState
) -> None:
    """Five records at one instant, two per page; once the group is being paged, record 1
    moves forward. With offsets (``page=2`` at that instant) record 3 shifted into the place
    already read and was never read."""
    for n in (1, 2, 3, 4, 5):
        erp.put(client_record(n, lastUpdateDate="2024-05-01T00:00:00Z"))
    listings: list[int] = []

    def move_record_1_forward(state: FakeErpState) -> None:
        listings.append(1)
        if len(listings) == 2:  # the first request at the group's instant
            state.put(client_record(1, summary="moved", lastUpdateDate="2024-05-02T00:00:00Z"))

    erp.after_list.append(move_record_1_forward)
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert sorted(d["number"] for d in env.collection.find()) == [1, 2, 3, 4, 5]
    one = env.collection.find_one({"number": 1})
    assert one is not None and one["title"] == "moved"
    assert all("page=" not in r for r in erp.requests), "no offsets"
    assert any("afterOrderNo=2" in r for r in erp.requests), erp.requests


def test_more_records_at_one_instant_than_a_run_reads_go_in_over_runs(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    for n in range(1, 11):
        erp.put(client_record(n, lastUpdateDate="2024-05-01T00:00:00Z"))
    inserted = []
    for _ in range(3):
        result = env.cli("inbound", CLIENT_API_MAX_PAGES="2")
        assert result.code == 0, result.output
        inserted.append(result.counts()["inserted"])
    assert inserted == [4, 4, 2]
    assert env.collection.count_documents({}) == 10
    [state] = mongo[env.database]["client_sync_state"].find()
    assert (state["watermark"], state["afterOrderNo"]) == ("2024-05-01T00:00:00.000Z", 10)
    quiet = env.cli("inbound", CLIENT_API_MAX_PAGES="2")
    assert quiet.code == 0 and quiet.counts()["inserted"] == 0, quiet.output


# -- 4. a record dated ahead, within the allowance, does not move the watermark past now -------


def test_a_record_dated_ahead_within_the_allowance_hides_no_later_change(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=2)
    erp.put(client_record(1, lastUpdateDate=ahead.isoformat()))
    first = env.cli("inbound")
    assert first.code == 0, first.output
    assert first.counts()["inserted"] == 1, "within CLIENT_CLOCK_SKEW_SECONDS: applied"
    # Stored before the record (or not at all: the page moved it nowhere), never past the
    # moment the page was asked for.
    for state in mongo[env.database]["client_sync_state"].find():
        stored = datetime.fromisoformat(state["watermark"].replace("Z", "+00:00"))
        assert stored < ahead - timedelta(minutes=1), "not past the moment the page was asked for"
    # A real change made now, dated before record 1's date, is still read.
    erp.put(client_record(2, lastUpdateDate=datetime.now(UTC).isoformat()))
    second = env.cli("inbound")
    assert second.code == 0, second.output
    assert (second.counts()["inserted"], second.counts()["stale"]) == (1, 1)
    assert env.collection.count_documents({"number": 2}) == 1


# -- 5. secrets: not in the state key, not in part, not Base64, not in the query string --------


def url_with(erp_url: str, userinfo: str = "", query: str = "") -> str:
    scheme, _, rest = erp_url.partition("://")
    return f"{scheme}://{userinfo}{rest}/{query}"


def test_the_state_is_keyed_by_the_url_without_credentials_or_query(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    erp.token = None
    plain = env.extra["CLIENT_API_URL"]
    erp.put(client_record(1, lastUpdateDate="2024-05-01T00:00:00Z"))
    first = env.cli(
        "inbound",
        CLIENT_API_TOKEN="",
        CLIENT_API_URL=url_with(plain, "alice:PaSsWoRd@", "?apikey=k3y-SeCrEt-42"),
    )
    assert first.code == 0, first.output
    [state] = mongo[env.database]["client_sync_state"].find()
    assert state["_id"] == f"client_erp_http:{plain}/"
    for secret in ("PaSsWoRd", "alice", "k3y-SeCrEt-42"):
        assert secret not in first.output and secret not in str(state)
    assert "apikey=***" in first.output, "the query's keys are shown, not its values"
    assert all("apikey=k3y-SeCrEt-42" in r for r in erp.requests), "the query goes with each"
    # Other credentials, same API: the watermark is kept.
    erp.put(client_record(2, lastUpdateDate="2024-05-02T00:00:00Z"))
    second = env.cli(
        "inbound", CLIENT_API_TOKEN="", CLIENT_API_URL=url_with(plain, "alice:n3w-PaSs@")
    )
    assert second.code == 0, second.output
    assert (second.counts()["inserted"], second.counts()["stale"]) == (1, 0)


def test_credentials_echoed_in_part_or_base64_are_shown_nowhere(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    """An ERP's error pages echo the token without its first characters, and the Basic
    header (Base64 of user:password): neither reaches the logs, the report or dead letters."""
    erp.echo_credentials = True
    env.collection.insert_one(tracos_doc(1))
    report = env.root / "report.json"
    bearer = env.cli("run", REPORT_PATH=str(report))
    assert bearer.code == 1, bearer.output
    assert_secret_absent(bearer.output + report.read_text() + str(letters(env, mongo)))
    erp.token = None
    password = "PaSsWoRd-0f-alice"
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    url = url_with(env.extra["CLIENT_API_URL"], f"alice:{password}@")
    userpass = env.cli("run", CLIENT_API_TOKEN="", CLIENT_API_URL=url, REPORT_PATH=str(report))
    assert userpass.code == 1, userpass.output
    assert "Authorization Basic ***" in userpass.output
    shown = userpass.output + report.read_text() + str(letters(env, mongo))
    for secret in (password, basic):
        assert_secret_absent(shown, secret)


# -- 6. a token and URL credentials: refused, not one of them silently dropped ------------------


def test_a_token_and_credentials_in_the_url_are_refused_together(
    env: Env, erp: FakeErpState
) -> None:
    url = url_with(env.extra["CLIENT_API_URL"], "alice:PaSsWoRd-0f-alice@")
    result = env.cli("run", CLIENT_API_URL=url)
    assert result.code == 2, result.output
    assert "CLIENT_API_TOKEN" in result.output and "CLIENT_API_URL" in result.output
    assert_secret_absent(result.output)
    assert_secret_absent(result.output, "PaSsWoRd-0f-alice")
    assert erp.requests == [], "refused before anything is sent"


# -- 7. Retry-After: nan / inf are unreadable, not "now" or "never" -----------------------------


def test_a_retry_after_that_is_not_finite_counts_as_absent(env: Env, erp: FakeErpState) -> None:
    erp.put(client_record(1))
    erp.fail_next(503, times=2, retry_after=float("inf"))
    patient = env.cli("inbound")
    assert patient.code == 0, "retried with backoff, not given up at once: " + patient.output
    assert patient.counts()["inserted"] == 1
    erp.fail_next(503, times=10_000, retry_after=float("nan"))
    failed = env.cli("inbound", CLIENT_API_RETRY_SECONDS="1")
    assert failed.code == 1, failed.output
    assert "retry after" not in failed.output, "nan is no delay the server asked for"
    erp.failures.clear()
