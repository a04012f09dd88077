"""Testing a mapping before it goes live: ``tracos-sync mapping test|schema`` (no database, no
connector), ``check`` with an integration's samples, every problem of a file in a dry run, and
a run that refused every record it read (its warning, status and watch gauge)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.builders import aged, client_record, write_json
from tests.conftest import Env, Result
from tests.e2e.test_integrations import folders, write_integrations
from tests.server import ROOT
from tests.support.environ import cli_environ
from tests.support.watching import metrics_or_empty, stop, wait_until, watch_with_metrics

GLOBEX = ROOT / "examples" / "mappings" / "globex.toml"
GLOBEX_SAMPLES = ROOT / "examples" / "samples" / "globex"
# Nothing listens there: a command that tried to reach a database would fail.
NOWHERE = "mongodb://127.0.0.1:9"


def offline(cwd: Path, *args: str, **settings: str) -> Result:
    """``python -m tracos_sync`` with MONGO_URI pointing where no database is."""
    proc = subprocess.run(
        [sys.executable, "-m", "tracos_sync", *args],
        cwd=cwd,
        env=cli_environ(NOWHERE, "nowhere", cwd / "in", cwd / "out", **settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def globex_record(number: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": number,
        "status": "DONE",
        "deleted": False,
        "details": {"title": f"Order {number}"},
        "dates": {"created": "01/05/2024 07:00", "updated": "01/05/2024 09:30", "deleted": None},
        "source": "tracos",
    }
    record.update(overrides)
    return record


def test_good_samples_exit_0_with_the_work_order_and_the_record_written_back(
    tmp_path: Path,
) -> None:
    sample = write_json(tmp_path / "good.json", [globex_record(7), globex_record(8)])
    result = offline(tmp_path, "mapping", "test", str(GLOBEX), str(sample))
    assert result.code == 0, result.output
    assert f"{sample} record 0  ok" in result.stdout
    # São Paulo time (the mapping's zone) read as UTC.
    assert '"number":7,"status":"completed"' in result.stdout
    assert '"createdAt":"2024-05-01T10:00:00.000Z"' in result.stdout
    assert '{"id":8,"status":"DONE"' in result.stdout
    assert "round trip   the same record" in result.stdout
    assert "2 records in 1 sample: 2 accepted, 0 refused" in result.stdout


def test_a_refused_record_exits_1_with_every_problem_listed(tmp_path: Path) -> None:
    bad = globex_record(9, status="SCRAPPED", details={})
    dates = globex_record(10, dates={"created": "31/02/2024 07:00", "updated": "9/5/2024 9:30"})
    sample = write_json(tmp_path / "batch.json", [globex_record(8), bad, dates])
    result = offline(tmp_path, "mapping", "test", str(GLOBEX), str(sample))
    assert result.code == 1, result.output
    assert f"{sample} record 1  REFUSED: 2 problems" in result.stdout
    assert '$.status: "SCRAPPED" is not one of' in result.stdout
    assert "$.details.title: 'title' is a required property" in result.stdout
    assert f"{sample} record 2  REFUSED: 2 problems" in result.stdout
    assert "$.dates.created: not a date in the format" in result.stdout
    assert "$.dates.updated: not a date in the format" in result.stdout
    assert "3 records in 1 sample: 1 accepted, 2 refused" in result.stdout

    as_json = offline(tmp_path, "mapping", "test", str(GLOBEX), str(sample), "--json")
    assert as_json.code == 1, as_json.output
    report = orjson.loads(as_json.stdout)
    assert (report["records"], report["accepted"], report["refused"]) == (3, 1, 2)
    assert [len(r["problems"]) for r in report["results"]] == [0, 2, 2]
    assert report["results"][0]["workOrder"]["number"] == 8


def test_the_round_trip_diff_shows_what_the_format_cannot_keep(tmp_path: Path) -> None:
    # ISO 8601 in UTC at millisecond precision: an offset and microseconds do not come back.
    mapping = tmp_path / "iso.toml"
    mapping.write_text(
        "[mapping]\n"
        '[mapping.fields]\nnumber = "no"\ntitle = "title"\n'
        'created_at = "created"\nupdated_at = "updated"\n'
        '[mapping.status]\nfield = "state"\n[mapping.status.values]\n'
        'A = "pending"\nB = "in_progress"\nC = "completed"\nD = "cancelled"\nE = "on_hold"\n'
    )
    record = {
        "no": 5,
        "state": "C",
        "title": "Belt",
        "created": "2024-05-01T07:00:00.000Z",
        "updated": "2024-05-01T09:30:15.123456+02:00",
        "plant": "1000",
    }
    sample = write_json(tmp_path / "5.json", record)
    result = offline(tmp_path, "mapping", "test", str(mapping), str(sample))
    assert result.code == 0, result.output
    assert (
        'round trip   $.updated: "2024-05-01T09:30:15.123456+02:00" → "2024-05-01T07:30:15.123Z"'
        in result.stdout
    )
    assert '$.plant: "1000" → (absent)' in result.stdout  # a field the mapping does not know
    assert "$.created" not in result.stdout  # written back as it came: no difference
    as_json = offline(tmp_path, "mapping", "test", str(mapping), str(sample), "--json")
    differences = orjson.loads(as_json.stdout)["results"][0]["differences"]
    assert {"path": "$.plant", "given": "1000"} in differences


def test_a_bad_mapping_exits_2_naming_each_key(tmp_path: Path) -> None:
    mapping = tmp_path / "bad.toml"
    text = GLOBEX.read_text().replace('timezone = "America/Sao_Paulo"', "timezone = 5")
    mapping.write_text(text.replace('order = ["id", ', 'order = "id"\nx = ['))
    sample = write_json(tmp_path / "s.json", globex_record(1))
    result = offline(tmp_path, "mapping", "test", str(mapping), str(sample))
    assert result.code == 2, result.output
    lines = result.stderr.splitlines()
    assert any("mapping.timezone: Input should be a valid string" in x for x in lines), lines
    assert any("mapping.order: Input should be a valid list" in x for x in lines), lines
    assert not any("mapping.timezone" in x and "mapping.order" in x for x in lines), (
        "each problem on a line of its own"
    )
    assert offline(tmp_path, "mapping", "schema", str(mapping)).code == 2


def test_mapping_schema_prints_the_client_records_json_schema(tmp_path: Path) -> None:
    result = offline(tmp_path, "mapping", "schema", str(GLOBEX))
    assert result.code == 0, result.output
    schema = orjson.loads(result.stdout)
    assert schema["$schema"].startswith("http://json-schema.org/")
    assert "id" in schema["required"]
    assert "DONE" in schema["properties"]["status"]["enum"]
    assert "title" in schema["properties"]["details"]["properties"]


def test_an_integrations_mapping_is_tested_with_its_connectors_time_zone(tmp_path: Path) -> None:
    mapping = GLOBEX.read_text().replace('timezone = "America/Sao_Paulo"', "")
    (tmp_path / "tokyo.toml").write_text(mapping)
    integrations = write_integrations(
        tmp_path / "integrations.toml",
        [
            {
                "name": "tokyo",
                "mapping": str(tmp_path / "tokyo.toml"),
                "settings": {**folders(tmp_path, "tokyo"), "client_timezone": "Asia/Tokyo"},
            }
        ],
    )
    sample = write_json(tmp_path / "1.json", globex_record(1))
    args = ("--integrations", str(integrations), "mapping", "test", "--integration", "tokyo")
    result = offline(tmp_path, *args, str(sample))
    assert result.code == 0, result.output
    assert '"createdAt":"2024-04-30T22:00:00.000Z"' in result.stdout  # 07:00 in Tokyo
    assert "naive times read in Asia/Tokyo (" in result.stdout
    assert "settings.client_timezone)" in result.stdout
    unknown = offline(tmp_path, *args[:-1], "osaka", str(sample))
    assert unknown.code == 2 and "no integration named 'osaka'" in unknown.stderr


def test_a_mapping_file_is_tested_in_the_zone_run_reads_it_in(tmp_path: Path) -> None:
    # run, with an integrations file, never reads the environment's CLIENT_TIMEZONE: an
    # integration without settings.client_timezone reads UTC, and so does mapping test.
    mapping = tmp_path / "nozone.toml"
    mapping.write_text(GLOBEX.read_text().replace('timezone = "America/Sao_Paulo"', ""))
    sample = write_json(tmp_path / "1.json", globex_record(1))
    result = offline(
        tmp_path, "mapping", "test", str(mapping), str(sample), CLIENT_TIMEZONE="Asia/Tokyo"
    )
    assert result.code == 0, result.output
    assert '"createdAt":"2024-05-01T07:00:00.000Z"' in result.stdout  # 07:00 read in UTC
    assert result.stdout.startswith("naive times read in UTC (the default of an integration")
    as_json = offline(tmp_path, "mapping", "test", "--json", str(GLOBEX), str(sample))
    assert orjson.loads(as_json.stdout)["timezone"] == {
        "name": "America/Sao_Paulo",
        "from": "the mapping's timezone",
    }


def test_check_reads_an_integrations_samples_through_its_mapping(env: Env) -> None:
    samples = env.root / "samples"
    write_json(samples / "a.json", globex_record(1))
    write_json(samples / "b.json", [globex_record(2), globex_record(3)])
    path = write_integrations(
        env.root / "integrations.toml",
        [
            {
                "name": "globex",
                "mapping": str(GLOBEX),
                "samples": str(samples),
                "settings": folders(env.root, "globex"),
            }
        ],
    )
    good = env.cli("--integrations", str(path), "check")
    assert good.code == 0, good.output
    assert "ok    globex: samples" in good.stdout
    assert f"3 records in 2 samples of {samples} read by the mapping" in good.stdout
    write_json(samples / "b.json", [globex_record(2), globex_record(3, status="SCRAPPED")])
    bad = env.cli("--integrations", str(path), "check")
    assert bad.code == 1, bad.output
    assert "FAIL  globex: samples" in bad.stdout
    assert f'{samples / "b.json"} record 1: $.status: "SCRAPPED" is not one of' in bad.stdout


def test_a_dry_run_lists_every_problem_of_a_file(env: Env) -> None:
    write_json(env.inbound / "good.json", client_record(1))
    write_json(
        env.inbound / "bad.json",
        [client_record(2, orderNo="x", summary=5), client_record(3), client_record(4, isDone=1)],
    )
    aged(env.inbound / "bad.json")
    result = env.cli("inbound", "--dry-run")
    assert result.code == 0, result.output
    assert "inbound.would_reject" in result.output and "problems=3" in result.output
    problems = [line for line in result.output.splitlines() if "inbound.problem" in line]
    assert len(problems) == 3, result.output
    assert any("record=0" in p and "path=$.orderNo" in p for p in problems), problems
    assert any("record=0" in p and "path=$.summary" in p for p in problems), problems
    assert any("record=2" in p and "path=$.isDone" in p for p in problems), problems


def test_a_run_that_refuses_every_record_says_so_and_still_exits_0(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1, summary=None))
    write_json(env.inbound / "2.json", [client_record(2, summary=None), client_record(3, isDone=1)])
    result = env.cli("inbound")
    assert result.code == 0, result.output  # refused records are quarantined, not failures
    warnings = [line for line in result.output.splitlines() if "inbound.all_refused" in line]
    assert len(warnings) == 1, result.output
    assert "records=3" in warnings[0]
    assert "reason=\"$.summary: null is not of type 'string'" in warnings[0]
    assert "times=2" in warnings[0]
    assert result.summary()["status"] == "refused"

    write_json(env.inbound / "4.json", client_record(4, summary=None))
    write_json(env.inbound / "5.json", client_record(5))
    mixed = env.cli("inbound")
    assert mixed.code == 0, mixed.output
    assert "inbound.all_refused" not in mixed.output
    assert mixed.summary()["status"] == "ok"


def test_a_truncated_file_is_not_the_mapping_refusing_everything(env: Env) -> None:
    truncated = env.inbound / "cut.json"
    truncated.parent.mkdir(parents=True, exist_ok=True)
    truncated.write_bytes(orjson.dumps(client_record(1))[:40])
    aged(truncated)
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert result.summary()["rejected"] == "1" and result.summary()["status"] == "ok"
    assert "inbound.all_refused" not in result.output

    # Beside records the mapping refused, it neither hides nor adds to their count.
    truncated.write_bytes(orjson.dumps(client_record(2))[:40])
    aged(truncated)
    write_json(env.inbound / "3.json", client_record(3, summary=None))
    refused = env.cli("inbound")
    assert refused.summary()["status"] == "refused", refused.output
    (warning,) = [line for line in refused.output.splitlines() if "inbound.all_refused" in line]
    assert "records=1" in warning and "$.summary" in warning
    assert "mapping test --integration NAME" in warning


def test_watch_gauges_a_mapping_that_refuses_everything(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1, summary=None))
    proc, port = watch_with_metrics(env, WATCH_INTERVAL="0.2")
    try:
        refused = 'tracos_sync_inbound_all_refused{integration="default"} 1.0'
        wait_until(lambda: refused in metrics_or_empty(port), proc, 30)
        write_json(env.inbound / "2.json", client_record(2))
        accepted = 'tracos_sync_inbound_all_refused{integration="default"} 0.0'
        wait_until(lambda: accepted in metrics_or_empty(port), proc, 30)
    finally:
        result, _ = stop(proc)
    assert result.code == 0, result.output
    assert "inbound.all_refused" in result.output
