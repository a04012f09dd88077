"""The examples are true: ``examples/integrations.toml`` serves its two customers — today's
format and Globex's (another shape, onboarded with a mapping and no code) — at once, against one
server, both ways; an HTTP integration runs beside a folder one."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pymongo import MongoClient

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env
from tests.e2e.test_integrations import summaries, write_integrations
from tests.server import ROOT
from tracos_sync.connectors.client_erp_http.fake_server import fake_erp


def examples(env: Env) -> Path:
    """The examples folder in the test's own directory, where the CLI runs."""
    shutil.copytree(ROOT / "examples", env.root / "examples")
    return env.root / "examples" / "integrations.toml"


def test_both_example_customers_sync_at_once_both_ways(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    path = examples(env)
    database = mongo[env.database]
    acme, globex = database["acme_workorders"], database["globex_workorders"]
    write_json(env.root / "data/acme/inbound/7.json", client_record(7))
    inbound = env.root / "data/globex/inbound"
    inbound.mkdir(parents=True)
    for sample in (env.root / "examples/samples/globex").iterdir():
        shutil.copy(sample, inbound / sample.name)
    created = datetime(2024, 6, 1, 8, 0, 0, 123_000, tzinfo=UTC)
    globex.insert_one(
        tracos_doc(
            500,
            isSynced=False,
            status="on_hold",
            title="From TracOS",
            createdAt=created,
            updatedAt=created,
        )
    )

    result = env.cli("--integrations", str(path), "run")

    assert result.code == 0, result.output
    lines = summaries(result)
    assert (lines["acme"]["inserted"], lines["globex"]["inserted"]) == ("1", "3")
    assert lines["globex"]["rejected"] == "1" and lines["globex"]["exported"] == "1"
    assert acme.find_one({"number": 7}) is not None
    # Globex's local times (São Paulo, UTC-3) are instants in TracOS.
    belt = globex.find_one({"number": 42})
    assert belt is not None
    assert (belt["status"], belt["title"]) == ("completed", "Replace conveyor belt")
    assert belt["updatedAt"].replace(tzinfo=UTC) == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    rails = globex.find_one({"number": 44})
    assert rails is not None and (rails["status"], rails["deleted"]) == ("cancelled", True)
    # The record with a status Globex's mapping does not know is quarantined, in its terms.
    reason = read_json(inbound / "rejected" / "batch.json.error.json")
    assert any(p["path"] == "$.status" and p["record"] == 2 for p in reason["problems"]), reason
    assert (inbound / "processed" / "42.json").exists()
    # Outbound in Globex's own shape, its local time, minutes only, with its constant.
    written = read_json(env.root / "data/globex/outbound/500.json")
    assert written["id"] == 500 and written["status"] == "ON_HOLD"
    assert written["details"] == {"title": "From TracOS"}
    assert written["dates"]["updated"] == "01/06/2024 05:00"
    assert written["source"] == "tracos"
    assert not (env.root / "data/acme/outbound/500.json").exists()


def test_an_http_integration_runs_beside_a_folder_one(env: Env) -> None:
    with fake_erp() as (url, erp):
        erp.put(client_record(11))
        path = write_integrations(
            env.root / "integrations.toml",
            [
                {
                    "name": "acme",
                    "settings": {
                        "data_inbound_dir": str(env.root / "acme/in"),
                        "data_outbound_dir": str(env.root / "acme/out"),
                    },
                },
                {
                    "name": "initech",
                    "connector": "http",
                    "tracos": {"collection": "initech_workorders"},
                    "settings": {"client_api_url": url, "client_api_retry_seconds": 1},
                },
            ],
        )
        write_json(env.root / "acme/in/12.json", client_record(12))
        result = env.cli("--integrations", str(path), "run")
    assert result.code == 0, result.output
    lines = summaries(result)
    assert (lines["acme"]["inserted"], lines["initech"]["inserted"]) == ("1", "1")
    assert lines["*"]["inserted"] == "2"


def test_the_present_api_example_syncs_both_ways_through_the_api_connector(env: Env) -> None:
    """``examples/integrations-present-api.toml``: the present API described for the ``api``
    connector (the ``http`` connector's own description), against its test server."""
    examples(env)
    token = "t0ken-of-the-example"
    with fake_erp(token=token) as (url, erp):
        for n in (1, 2, 3):
            erp.put(client_record(n, lastUpdateDate=f"2024-05-0{n}T00:00:00Z"))
        database = MongoClient(env.uri)[env.database]
        database["workorders"].insert_one(tracos_doc(100))
        path = env.root / "examples" / "integrations-present-api.toml"
        first = env.cli(
            "--integrations", str(path), "run", CLIENT_API_URL=url, CLIENT_API_TOKEN=token
        )
        assert first.code == 0, first.output
        assert (summaries(first)["erp"]["inserted"], summaries(first)["erp"]["exported"]) == (
            "3",
            "1",
        )
        assert [r["orderNo"] for r in erp.received] == [100]
        assert erp.requests[0].startswith("GET /workorders?updatedSince=1970-01-01"), erp.requests
        again = env.cli(
            "--integrations", str(path), "run", CLIENT_API_URL=url, CLIENT_API_TOKEN=token
        )
        assert again.code == 0, again.output
        assert summaries(again)["erp"]["inserted"] == "0"
        assert "updatedSince=2024-05-03T00:00:00.000Z&afterOrderNo=3" in erp.requests[-1]


def test_seed_writes_samples_in_the_customers_own_format(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    path = examples(env)
    seeded = env.cli("--integrations", str(path), "seed", "--only", "globex")
    assert seeded.code == 0, seeded.output
    sample = read_json(env.root / "data/globex/inbound/101.json")
    assert sample["id"] == 101 and sample["status"] == "OPEN" and "details" in sample
    result = env.cli("--integrations", str(path), "run", "--only", "globex")
    assert result.code == 0, result.output
    counts = summaries(result)["globex"]
    assert (counts["inserted"], counts["rejected"], counts["exported"]) == ("10", "2", "10")
    assert mongo[env.database]["globex_workorders"].count_documents({}) == 20
    ambiguous = env.cli("--integrations", str(path), "seed")
    assert ambiguous.code == 2 and "--only" in ambiguous.output


def test_the_sap_example_customer_syncs_both_ways(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    """Configuration only: OData v2 envelopes in, 12-digit keys, integer status codes, "X"
    deletion flags, dates in two fields in Berlin time; 13 sample records, 4 refused for the
    reasons the samples say. Outbound: one record a file, as the customer writes them."""
    path = examples(env)
    sap = mongo[env.database]["sap_workorders"]
    inbound = env.root / "data/sap/inbound"
    inbound.mkdir(parents=True)
    for sample in (env.root / "examples/samples/sap").iterdir():
        shutil.copy(sample, inbound / sample.name)
    changed = datetime(2025, 3, 20, 9, 15, 30, tzinfo=UTC)
    sap.insert_one(tracos_doc(4000500, status="completed", title="From TracOS", updatedAt=changed))

    result = env.cli("--integrations", str(path), "run", "--only", "sap")

    assert result.code == 0, result.output
    counts = summaries(result)["sap"]
    assert (counts["inserted"], counts["rejected"], counts["exported"]) == ("9", "4", "1")
    seal = sap.find_one({"number": 4000123})
    assert seal is not None
    assert (seal["status"], seal["title"], seal["deleted"]) == (
        "in_progress",
        "Replace pump seal",
        False,
    )
    # "20250310" + "142205" in Berlin (UTC+1 in March) is 13:22:05 UTC.
    assert seal["createdAt"].replace(tzinfo=UTC) == datetime(2025, 3, 10, 13, 22, 5, tzinfo=UTC)
    assert "WERKS" not in seal and "plant" not in seal  # the client's own field: not stored
    overhaul = sap.find_one({"number": 4000140})
    assert overhaul is not None and overhaul["deleted"] is True
    assert overhaul["deletedAt"].replace(tzinfo=UTC) == datetime(2025, 3, 1, 12, tzinfo=UTC)
    reasons = {
        (p["record"], p["path"])
        for name in ("orders.json", "deletions.json")
        for p in read_json(inbound / "rejected" / f"{name}.error.json")["problems"]
    }
    # The unpadded key, the status as text, the time without its seconds, the flag "Y".
    assert {(7, "$.AUFNR"), (8, "$.STATUS"), (9, "$.ERDAT"), (2, "$.LOEKZ")} <= reasons, reasons
    written = (env.root / "data/sap/outbound/4000500.json").read_bytes()
    assert orjson.loads(written) == {
        "AUFNR": "000004000500",
        "KTEXT": "From TracOS",
        "STATUS": 40,
        "LOEKZ": "",
        "ERDAT": "20240401",
        "ERZET": "100000",
        "AEDAT": "20250320",
        "AEZET": "101530",
        "LOEDAT": None,
        "WERKS": "1000",
    }
    assert list(orjson.loads(written)) == [
        "AUFNR", "KTEXT", "STATUS", "LOEKZ", "ERDAT", "ERZET", "AEDAT", "AEZET", "LOEDAT",
        "WERKS",
    ]  # fmt: skip


def test_seed_writes_envelopes_for_a_customer_whose_files_hold_them(env: Env) -> None:
    path = examples(env)
    seeded = env.cli("--integrations", str(path), "seed", "--only", "sap")
    assert seeded.code == 0, seeded.output
    sample = read_json(env.root / "data/sap/inbound/101.json")
    assert sample["d"]["results"][0]["AUFNR"] == "000000000101"
    result = env.cli("--integrations", str(path), "run", "--only", "sap")
    assert result.code == 0, result.output
    counts = summaries(result)["sap"]
    assert (counts["inserted"], counts["rejected"]) == ("10", "2"), counts
