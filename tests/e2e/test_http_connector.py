"""The HTTP connector end to end: the CLI against a fake ERP server and a real MongoDB.

Each way an ERP was seen to misbehave (issue 11) is a switch of the fake and a test here: a
future-dated record, an empty page that claims more, paging that never ends, a slow drip, an HTML
page, answers of the wrong shape, error storms with ``Retry-After``, error pages that echo our
credentials; and the connector's state kept through the bootstrap (``--embedded`` works).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pymongo import MongoClient

import tracos_sync.connectors.declarative_http as http_package
from tests.builders import client_record, tracos_doc
from tests.conftest import Env, Result
from tests.server import server_binary
from tests.support.watching import stop, wait_until
from tracos_sync.connectors.client_erp_http.fake_server import FAR_FUTURE, FakeErpState, fake_erp

# Characters that escape and URL-encode differently, so that every form of it is looked for.
TOKEN = "erp-t0ken/very+secret=="


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


def letters(env: Env, mongo: MongoClient[Any]) -> list[dict[str, Any]]:
    return list(mongo[env.database]["client_dead_letters"].find())


def state_key(env: Env) -> str:
    return f"client_erp_http:{env.extra['CLIENT_API_URL']}/"


def assert_one_clear_failure(result: Result, *phrases: str, debug: bool = False) -> None:
    """Exit 1, one ``run.failed`` line saying why, no crash, no traceback (unless at DEBUG)."""
    assert result.code == 1, result.output
    failed = [line for line in result.output.splitlines() if "run.failed" in line]
    assert len(failed) == 1, result.output
    for phrase in phrases:
        assert phrase in failed[0], failed[0]
    assert "run.crashed" not in result.output
    assert debug or "Traceback" not in result.output


def assert_secret_absent(text: str, secret: str = TOKEN) -> None:
    for form in (secret, quote(secret, safe=""), quote(secret), repr(secret)[1:-1]):
        assert form not in text, f"{form!r} shown in:\n{text}"
    for start in range(len(secret) - 6):  # nor any part of it that a cut would leave
        assert secret[start : start + 7] not in text, secret[start : start + 7]


# -- the API as it should be --------------------------------------------------------------------


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


def test_runs_on_the_embedded_server_with_its_state_there(env: Env, erp: FakeErpState) -> None:
    """The watermark and dead letters go through the bootstrap's client: ``--embedded`` works,
    and the state is in the embedded server (the second run reads from the watermark)."""
    for n in (1, 2, 3):
        erp.put(client_record(n, lastUpdateDate=f"2024-05-0{n}T00:00:00Z"))
    embedded = {
        "MONGO_EMBEDDED_DIR": str(env.root / "db"),
        "SECANTUSD_BIN": server_binary(),
        "MONGO_URI": "mongodb://127.0.0.1:1",  # never used: --embedded wins
    }
    first = env.cli("run", "--embedded", **embedded)
    assert first.code == 0, first.output
    assert first.counts()["inserted"] == 3
    assert "pymongo" not in first.output and "Topology" not in first.output
    second = env.cli("inbound", "--embedded", **embedded)
    assert second.code == 0, second.output
    assert second.counts()["inserted"] == 0
    assert "updatedSince=2024-05-03" in erp.requests[-1], erp.requests[-1]


def test_the_connector_holds_no_database_client_of_its_own() -> None:
    """One MongoDB client per process: the connector's state goes through the port."""
    package = Path(http_package.__file__).parent
    for source in package.glob("*.py"):
        assert "pymongo" not in source.read_text(), source.name


# -- finding: one future-dated record blinded it ------------------------------------------------


def test_a_future_dated_record_cannot_blind_the_watermark(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    erp.put(client_record(1, lastUpdateDate="2024-05-01T00:00:00Z"))
    erp.put(client_record(2, lastUpdateDate="2024-05-02T00:00:00Z"))
    erp.put_future(client_record(3))
    first = env.cli("inbound")
    assert first.code == 0, first.output
    assert (first.counts()["inserted"], first.counts()["rejected"]) == (2, 1)
    assert "is in the future" in first.output
    assert env.collection.count_documents({"number": 3}) == 0, "not applied"
    stored = mongo[env.database]["client_sync_state"].find_one({"_id": state_key(env)})
    assert stored is not None and stored["watermark"] == "2024-05-02T00:00:00.000Z"
    # A later change to another order, and a new order, are still fetched.
    erp.put(client_record(1, summary="changed later", lastUpdateDate="2024-06-01T00:00:00Z"))
    erp.put(client_record(4, lastUpdateDate="2024-06-02T00:00:00Z"))
    second = env.cli("inbound")
    assert second.code == 0, second.output
    counts = second.counts()
    assert (counts["updated"], counts["inserted"], counts["rejected"]) == (1, 1, 1)
    one = env.collection.find_one({"number": 1})
    assert one is not None and one["title"] == "changed later"
    # The refusal is one dead letter, however often it recurs.
    [letter] = letters(env, mongo)
    assert letter["count"] == 2 and letter["lastAt"] > letter["firstAt"]
    assert "is in the future" in letter["problems"][0]["reason"]  # refused by the pipeline
    assert FAR_FUTURE[:10] in letter["payload"]


def test_a_watermark_stored_in_the_future_is_not_trusted(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    """A deployment blinded before this fix recovers: its future watermark is dropped."""
    mongo[env.database]["client_sync_state"].insert_one(
        {"_id": state_key(env), "watermark": FAR_FUTURE, "atWatermark": [3]}
    )
    erp.put(client_record(1, lastUpdateDate="2024-05-01T00:00:00Z"))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert "http.watermark_reset" in result.output
    assert result.counts()["inserted"] == 1


@pytest.mark.parametrize(
    ("after", "first_request", "inserted"),
    [
        (2, "updatedSince=2024-05-02T00:00:00.000Z&afterOrderNo=2&pageSize=2", 2),
        # Stored before keyset paging (no orderNo): its instant is read again.
        (None, "updatedSince=2024-05-02T00:00:00.000Z&afterOrderNo=0&pageSize=2", 3),
    ],
)
def test_a_watermark_the_http_connector_stored_before_is_honoured(
    env: Env,
    erp: FakeErpState,
    mongo: MongoClient[Any],
    after: int | None,
    first_request: str,
    inserted: int,
) -> None:
    """A deployment upgraded from the ``http`` connector's own code path to the ``api``
    connector's: the state document it stored (that key, that shape) is where reading goes on
    from, nothing read again and nothing skipped."""
    for n in (1, 2, 3, 4):
        erp.put(client_record(n, lastUpdateDate=f"2024-05-0{n}T00:00:00Z"))
    old: dict[str, Any] = {"_id": state_key(env), "watermark": "2024-05-02T00:00:00.000Z"}
    if after is not None:
        old.update(afterOrderNo=after, updatedAt=datetime(2024, 5, 2, 1, tzinfo=UTC))
    mongo[env.database]["client_sync_state"].insert_one(old)
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert (result.counts()["inserted"], result.counts()["stale"]) == (inserted, 0)
    assert erp.requests[0] == f"GET /workorders?{first_request}", erp.requests
    [state] = mongo[env.database]["client_sync_state"].find()
    assert state["_id"] == state_key(env)
    assert (state["watermark"], state["afterOrderNo"]) == ("2024-05-04T00:00:00.000Z", 4)


# -- findings: protocol errors were a crash or an endless loop ----------------------------------


def test_an_empty_page_that_claims_more_is_a_clear_failure(env: Env, erp: FakeErpState) -> None:
    erp.put(client_record(1))
    erp.empty_pages_claim_more = True
    started = time.monotonic()
    result = env.cli("inbound")
    assert_one_clear_failure(result, "empty page that claims more")
    assert len(erp.requests) == 1
    assert time.monotonic() - started < 30


def test_paging_that_never_ends_is_bounded_per_run(env: Env, erp: FakeErpState) -> None:
    """An ERP that ignores ``afterOrderNo`` and always claims more: the keyset request after the
    last record read comes round again, which ends the run there, what was read applied (no
    page is asked twice in a pass; ``CLIENT_API_MAX_PAGES`` bounds paging that does move:
    tests/unit/test_api_reader.py); the next run, from the watermark stored, fails as soon."""
    for n in (1, 2, 3):
        erp.put(client_record(n, lastUpdateDate=f"2024-05-0{n}T00:00:00Z"))
    erp.endless = True
    first = env.cli("inbound", CLIENT_API_MAX_PAGES="5")
    assert_one_clear_failure(first, "asked for already in this pass", "paging does not move")
    assert first.counts()["inserted"] == 3, "what was read is applied"
    assert len(erp.requests) == 3
    second = env.cli("inbound", CLIENT_API_MAX_PAGES="5")
    assert_one_clear_failure(second, "paging does not move")
    assert second.counts()["inserted"] == 0
    assert len(erp.requests) == 4, "one request: its next is itself"


def test_an_html_page_is_a_clear_failure(env: Env, erp: FakeErpState) -> None:
    erp.html()
    result = env.cli("inbound")
    assert_one_clear_failure(result, "not JSON", "text/html", "Maintenance")


def test_watch_outlives_an_html_page(env: Env, erp: FakeErpState) -> None:
    erp.html()
    proc = env.popen("watch", WATCH_INTERVAL="0.3")
    try:
        wait_until(lambda: len(erp.requests) >= 3, proc, 30)  # it failed, and tried again
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "not JSON" in result.output
    assert "watch.destination" in result.output, "a client-side failure, not the database's"
    assert "watch.database state='unavailable" not in result.output
    assert "run.crashed" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (b"[]", "expected {"),
        (b"null", "expected {"),
        (b'{"items": {"orderNo": 1}, "hasMore": false}', "expected {"),
        (b'{"items": [], "hasMore": "false"}', "expected {"),
        (b'{"items": [{"orderNo": 1', "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (
            json.dumps(
                {
                    "items": [
                        client_record(2, lastUpdateDate="2024-05-02T00:00:00Z"),
                        client_record(1, lastUpdateDate="2024-05-01T00:00:00Z"),
                    ],
                    "hasMore": False,
                }
            ).encode(),
            "out of order",
        ),
    ],
    ids=["array", "null", "items-object", "hasMore-text", "cut", "binary", "unordered"],
)
def test_an_answer_of_the_wrong_shape_is_a_clear_failure(
    env: Env, erp: FakeErpState, body: bytes, phrase: str
) -> None:
    erp.listing_answer = (200, "application/json", body)
    result = env.cli("inbound")
    assert_one_clear_failure(result, phrase)
    assert env.collection.count_documents({}) == 0


def test_an_answer_larger_than_allowed_is_refused(env: Env, erp: FakeErpState) -> None:
    for n in range(1, 3):
        erp.put(client_record(n, summary="x" * 2_000))
    result = env.cli("inbound", CLIENT_API_MAX_RESPONSE_BYTES="2048")
    assert_one_clear_failure(result, "larger than CLIENT_API_MAX_RESPONSE_BYTES")


# -- finding: a slow drip never timed out -------------------------------------------------------


def test_a_slow_drip_is_cut_by_the_deadline_of_the_whole_request(
    env: Env, erp: FakeErpState
) -> None:
    erp.put(client_record(1))
    erp.drip_seconds = 0.2  # the listing (~400 bytes) would take over a minute
    started = time.monotonic()
    result = env.cli(
        "inbound", CLIENT_API_TIMEOUT_SECONDS="1", CLIENT_API_RETRY_SECONDS="1.5", timeout=60
    )
    took = time.monotonic() - started
    assert_one_clear_failure(result, "no complete answer within 1s")
    assert took < 15, took


# -- error storms and Retry-After ---------------------------------------------------------------


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


def test_an_error_storm_is_waited_out_at_the_pace_the_server_asks(
    env: Env, erp: FakeErpState
) -> None:
    erp.put(client_record(1))
    erp.fail_next(429, times=1_000, retry_after=1)
    started = time.monotonic()
    result = env.cli("inbound", CLIENT_API_RETRY_SECONDS="3")
    took = time.monotonic() - started
    assert_one_clear_failure(result, "still failing after retrying for 3s", "HTTP 429")
    gaps = [b - a for a, b in zip(erp.request_times, erp.request_times[1:], strict=False)]
    assert 2 <= len(erp.requests) <= 4, erp.requests
    assert min(gaps) >= 0.9, gaps
    assert took < 15, took


def test_a_retry_after_beyond_the_budget_gives_up_at_once(env: Env, erp: FakeErpState) -> None:
    erp.put(client_record(1))
    erp.fail_next(503, times=5, retry_after=3_600)
    started = time.monotonic()
    result = env.cli("inbound", CLIENT_API_RETRY_SECONDS="5")
    assert_one_clear_failure(result, "asks to retry after 3600s", "HTTP 503")
    assert len(erp.requests) == 1
    assert time.monotonic() - started < 15


# -- dead letters -------------------------------------------------------------------------------


def test_refused_records_are_dead_letters_once_each_and_show_in_check(
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
    again = env.cli("run")
    assert again.code == 0, again.output
    assert (again.counts()["skipped"], again.counts()["rejected"]) == (1, 1), "tried again"
    found = letters(env, mongo)
    assert {d["direction"] for d in found} == {"inbound", "outbound"}
    assert [d["count"] for d in found] == [2, 2], "the same refusal is one entry"
    assert any("locked in the ERP" in p["reason"] for d in found for p in d["problems"])
    check = env.cli("check")
    assert "client dead letters" in check.stdout and "2 records refused" in check.stdout


def test_a_record_tracos_cannot_store_is_a_dead_letter_not_a_silent_skip(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    erp.put(client_record(1))
    erp.put(
        client_record(2, summary="x" * (9 * 1024 * 1024), lastUpdateDate="2024-05-01T13:00:00Z")
    )
    erp.put(client_record(3, lastUpdateDate="2024-05-01T14:00:00Z"))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert (result.counts()["inserted"], result.counts()["rejected"]) == (2, 1), result.output
    found = letters(env, mongo)
    assert len(found) == 1, found
    reasons = " ".join(p["reason"] for p in found[0]["problems"])
    assert "orderNo 2" in reasons and "over MongoDB's limit" in reasons
    assert env.collection.count_documents({"number": 2}) == 0


# -- findings: secrets shown --------------------------------------------------------------------


def test_token_is_sent_and_never_shown(
    env: Env, erp: FakeErpState, mongo: MongoClient[Any]
) -> None:
    env.collection.insert_one(tracos_doc(1))
    good = env.cli("run", LOG_LEVEL="DEBUG")
    assert good.code == 0, good.output
    assert_secret_absent(good.output)
    env.collection.insert_one(tracos_doc(2))
    bad = env.cli("run", CLIENT_API_TOKEN="wrong-token-value", LOG_LEVEL="DEBUG")
    assert bad.code == 1
    assert "401" in bad.output and "CLIENT_API_TOKEN" in bad.output
    assert_secret_absent(bad.output)
    assert_secret_absent(bad.output, "wrong-token-value")
    assert letters(env, mongo) == [], "refused credentials are not one record's refusal"


def test_whitespace_around_a_token_is_dropped(env: Env, erp: FakeErpState) -> None:
    """A secret mounted from a file ends with a newline: it is not part of the token."""
    env.collection.insert_one(tracos_doc(1))
    result = env.cli("run", CLIENT_API_TOKEN=f"  {TOKEN}\n")
    assert result.code == 0, result.output
    assert [r["orderNo"] for r in erp.received] == [1]


def test_a_token_with_whitespace_inside_is_refused_without_showing_it(
    env: Env, erp: FakeErpState
) -> None:
    result = env.cli("run", CLIENT_API_TOKEN="erp-t0ken/very\nsecret==")
    assert result.code == 2, result.output
    assert "CLIENT_API_TOKEN" in result.output
    assert_secret_absent(result.output, "erp-t0ken/very\nsecret==")
    assert "secret==" not in result.output and "erp-t0" not in result.output


def test_credentials_echoed_by_the_erp_are_shown_in_no_form(env: Env, erp: FakeErpState) -> None:
    """An error page that shows our Authorization header as is, escaped and URL-encoded."""
    erp.echo_credentials = True
    report = env.root / "report.json"
    result = env.cli("inbound", LOG_LEVEL="DEBUG", REPORT_PATH=str(report))
    assert_one_clear_failure(result, "HTTP 400", "Authorization Bearer ***", debug=True)
    assert_secret_absent(result.output)
    assert_secret_absent(report.read_text())
    check = env.cli("check")
    assert check.code == 1
    assert "FAIL  client API" in check.stdout and "Bearer ***" in check.stdout
    assert_secret_absent(check.output)


def test_a_long_password_in_the_api_url_is_never_shown(env: Env, erp: FakeErpState) -> None:
    password = "s3cr3t-" * 20
    url = f"http://user:{password}@127.0.0.1:99999999/api"  # a port out of range
    result = env.cli("run", CLIENT_API_URL=url)
    assert result.code == 2, result.output
    assert "CLIENT_API_URL" in result.output and "***@127.0.0.1" in result.output
    assert_secret_absent(result.output, password)
    assert "s3cr3t" not in result.output
