"""Several integrations in one deployment (an integrations file): each runs isolated, with its
own summary line, report entry, log field and metrics; configuration errors name the file, the
integration and the key (exit 2); without the file nothing changes."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env, Result
from tests.support.watching import wait_until, watch_with_metrics


def folders(root: Path, name: str) -> dict[str, str]:
    return {
        "data_inbound_dir": str(root / name / "in"),
        "data_outbound_dir": str(root / name / "out"),
    }


def write_integrations(path: Path, integrations: list[dict[str, Any]]) -> Path:
    """A TOML file of ``[[integration]]`` tables (values: strings, numbers, flat tables)."""
    lines = []
    for integration in integrations:
        lines.append("[[integration]]")
        tables = {k: v for k, v in integration.items() if isinstance(v, dict)}
        for key, value in integration.items():
            if not isinstance(value, dict):
                lines.append(f"{key} = {json.dumps(value)}")
        for table, values in tables.items():
            lines.append(f"[integration.{table}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def two_customers(env: Env, **globex: Any) -> Path:
    return write_integrations(
        env.root / "integrations.toml",
        [
            {"name": "acme", "settings": folders(env.root, "acme")},
            {
                "name": "globex",
                "tracos": {"collection": "globex_workorders"},
                "settings": folders(env.root, "globex"),
                **globex,
            },
        ],
    )


def summaries(result: Result) -> dict[str, dict[str, str]]:
    """Each summary line's fields by integration, the total's under ``*``."""
    found: dict[str, dict[str, str]] = {}
    for line in result.output.splitlines():
        if "run.summary" in line or "run.total" in line:
            fields = dict(t.partition("=")[::2] for t in line.split() if "=" in t)
            found[fields.get("integration", "*")] = fields
    return found


def test_two_integrations_sync_at_once_each_with_its_own_summary(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    path = two_customers(env)
    write_json(env.root / "acme/in/1.json", client_record(1))
    write_json(env.root / "globex/in/2.json", client_record(2))
    write_json(env.root / "globex/in/3.json", client_record(3))
    globex = mongo[env.database]["globex_workorders"]
    globex.insert_one(tracos_doc(40, isSynced=False))
    result = env.cli("--integrations", str(path), "run")
    assert result.code == 0, result.output
    lines = summaries(result)
    assert lines["acme"]["inserted"] == "1" and lines["acme"]["exported"] == "0"
    assert lines["globex"]["inserted"] == "2" and lines["globex"]["exported"] == "1"
    assert lines["*"]["inserted"] == "3" and lines["*"]["integrations"] == "2"
    # The total is the last word.
    assert "run.total" in result.output.strip().splitlines()[-1]
    assert env.collection.count_documents({}) == 1
    assert globex.count_documents({}) == 3
    assert read_json(env.root / "globex/out/40.json")["orderNo"] == 40
    assert not (env.root / "acme/out/40.json").exists()


def test_one_integration_failing_does_not_stop_another(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    # globex's collection holds the same number twice: its unique index cannot be built, so
    # nothing of globex may be written; acme runs as if globex were not there.
    globex = mongo[env.database]["globex_workorders"]
    globex.insert_many([tracos_doc(5), tracos_doc(5)])
    path = two_customers(env)
    write_json(env.root / "acme/in/1.json", client_record(1))
    write_json(env.root / "globex/in/2.json", client_record(2))
    result = env.cli("--integrations", str(path), "run", REPORT_PATH=str(env.root / "r.json"))
    assert result.code == 1, result.output
    lines = summaries(result)
    assert lines["acme"]["status"] == "ok" and lines["acme"]["inserted"] == "1"
    assert lines["globex"]["status"] == "failed"
    assert lines["*"]["status"] == "failed"
    assert "same number" in result.output
    assert (env.root / "acme/in/processed/1.json").exists()
    assert (env.root / "globex/in/2.json").exists()  # left for the next run
    report = read_json(env.root / "r.json")
    assert report["status"] == "failed"
    assert report["integrations"]["acme"]["status"] == "ok"
    assert report["integrations"]["acme"]["counts"]["inserted"] == 1
    assert "same number" in report["integrations"]["globex"]["error"]


def test_only_runs_the_named_integration(env: Env) -> None:
    path = two_customers(env)
    write_json(env.root / "acme/in/1.json", client_record(1))
    write_json(env.root / "globex/in/2.json", client_record(2))
    result = env.cli("--integrations", str(path), "run", "--only", "globex")
    assert result.code == 0, result.output
    assert set(summaries(result)) == {"globex", "*"}  # its summary, then the total
    assert summaries(result)["*"]["integrations"] == "1"
    assert (env.root / "acme/in/1.json").exists()
    assert (env.root / "globex/in/processed/2.json").exists()
    unknown = env.cli("--integrations", str(path), "run", "--only", "initech")
    assert unknown.code == 2
    assert "no integration named 'initech' (defined: acme, globex)" in unknown.output


def test_the_file_can_be_named_by_a_setting(env: Env) -> None:
    path = two_customers(env)
    write_json(env.root / "globex/in/2.json", client_record(2))
    result = env.cli("run", INTEGRATIONS_FILE=str(path))
    assert result.code == 0, result.output
    assert summaries(result)["globex"]["inserted"] == "1"


def test_json_logs_carry_the_integration(env: Env) -> None:
    path = two_customers(env)
    write_json(env.root / "acme/in/bad.json", {"orderNo": "x"})
    write_json(env.root / "globex/in/2.json", client_record(2))
    result = env.cli("--integrations", str(path), "run", LOG_FORMAT="json")
    assert result.code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    rejected = [e for e in events if e["event"] == "inbound.file_rejected"]
    assert [e["integration"] for e in rejected] == ["acme"]
    assert {e["integration"] for e in events if e["event"] == "run.summary"} == {"acme", "globex"}


def test_check_checks_every_integration(env: Env) -> None:
    path = two_customers(env)
    (env.root / "globex").mkdir()
    (env.root / "globex" / "out").write_text("a file where a folder should be")
    result = env.cli("--integrations", str(path), "check")
    assert result.code == 1, result.output
    assert "ok    acme: outbound folder" in result.stdout
    assert "FAIL  globex: outbound folder" in result.stdout


@pytest.mark.parametrize(
    ("integrations", "expected"),
    [
        (
            [{"name": "acme", "settings": {"data_inbund_dir": "x"}}],
            "integration 'acme': settings.data_inbund_dir: unknown setting",
        ),
        (
            [{"name": "acme", "tracos": {"colection": "x"}}],
            "integration 'acme': tracos.colection: unknown key",
        ),
        (
            [{"name": "Acme Corp"}],
            "integration 'Acme Corp': name: an integration's name is lower-case letters",
        ),
        (
            [{"name": "acme", "settings": {"inbound_min_age_seconds": -1}}],
            "integration 'acme': settings.inbound_min_age_seconds: Input should be",
        ),
        ([{"name": "acme", "connector": "ftp"}], "integration 'acme': connector: unknown"),
        ([{"name": "acme"}, {"name": "acme"}], "integration 'acme' is defined twice"),
        (
            [{"name": "acme"}, {"name": "globex", "settings": {"data_inbound_dir": "g"}}],
            "integrations 'acme' and 'globex' both sync",
        ),
        (
            [
                {"name": "acme", "tracos": {"collection": "a"}},
                {
                    "name": "globex",
                    "tracos": {"collection": "g"},
                    "settings": {
                        "data_inbound_dir": "data/inbound/globex",
                        "data_outbound_dir": "data/globex-out",
                    },
                },
            ],
            "lies inside DATA_INBOUND_DIR of 'acme'",
        ),
        (
            [{"name": "acme", "settings": {"data_outbound_dir": "${TRACOS_TEST_UNSET}/out"}}],
            "integration 'acme': settings.data_outbound_dir: ${TRACOS_TEST_UNSET} is not set",
        ),
        ([], "integration: Field required"),
        (
            [
                {
                    "name": "one",
                    "connector": "http",
                    "tracos": {"collection": "a"},
                    "settings": {"client_api_url": "http://127.0.0.1:9/api"},
                },
                {
                    "name": "two",
                    "connector": "http",
                    "tracos": {"collection": "b"},
                    "settings": {"client_api_url": "HTTP://user:pw@127.0.0.1:9/api/?key=x"},
                },
            ],
            "integrations 'one' and 'two' both use http://127.0.0.1:9/api",
        ),
        (
            [
                {
                    "name": "one",
                    "connector": "http",
                    "tracos": {"collection": "a"},
                    "settings": {"client_api_url": "http://127.0.0.1:9//api"},
                },
                {
                    "name": "two",
                    "connector": "http",
                    "tracos": {"collection": "b"},
                    "settings": {"client_api_url": "http://127.0.0.1:9/v2/../%61pi"},
                },
            ],
            "integrations 'one' and 'two' both use http://127.0.0.1:9/api",
        ),
        (
            [
                {"name": "acme", "tracos": {"collection": "client_sync_state"}},
                {"name": "globex", "settings": {"data_inbound_dir": "g", "data_outbound_dir": "o"}},
            ],
            "integration 'acme': tracos.state_collection",
        ),
        (
            [
                {"name": "acme", "tracos": {"database": "Tractian"}},
                {
                    "name": "globex",
                    "tracos": {"database": "tractian"},
                    "settings": {"data_inbound_dir": "g", "data_outbound_dir": "o"},
                },
            ],
            "differs from 'Tractian' only in case",
        ),
    ],
)
def test_configuration_errors_name_the_file_integration_and_key(
    env: Env, integrations: list[dict[str, Any]], expected: str
) -> None:
    path = write_integrations(env.root / "bad.toml", integrations)
    write_json(env.inbound / "1.json", client_record(1))
    result = env.cli("--integrations", str(path), "run")
    assert result.code == 2, result.output
    assert f"{path}: " in result.output
    assert expected in result.output
    assert env.collection.count_documents({}) == 0
    assert (env.inbound / "1.json").exists()


def test_settings_take_environment_variables(env: Env) -> None:
    path = write_integrations(
        env.root / "integrations.toml",
        [{"name": "acme", "settings": {"data_inbound_dir": "${ACME_ROOT}/in"}}],
    )
    write_json(env.root / "acme-root/in/1.json", client_record(1))
    result = env.cli("--integrations", str(path), "run", ACME_ROOT=str(env.root / "acme-root"))
    assert result.code == 0, result.output
    assert (env.root / "acme-root/in/processed/1.json").exists()


def test_watch_serves_every_integration_with_metrics_per_integration(env: Env) -> None:
    path = two_customers(env)
    proc, port = watch_with_metrics(env, "--integrations", str(path), WATCH_INTERVAL="0.5")
    try:
        wait_until((env.root / "globex/in/processed").exists, proc, 30)
        wait_until((env.root / "acme/in/processed").exists, proc, 30)
        write_json(env.root / "acme/in/1.json", client_record(1))
        write_json(env.root / "globex/in/2.json", client_record(2))
        wait_until((env.root / "acme/in/processed/1.json").exists, proc, 10)
        wait_until((env.root / "globex/in/processed/2.json").exists, proc, 10)
        # A sweep's counts are observed after it archived its files: wait for them.
        expected = [
            f'tracos_sync_outcomes_total{{integration="{name}",outcome="inserted"}} 1.0'
            for name in ("acme", "globex")
        ] + [f'tracos_sync_database_up{{integration="{name}"}} 1.0' for name in ("acme", "globex")]
        wait_until(lambda: all(line in metrics(port) for line in expected), proc, 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert err.count("watch.started") == 2


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        page: str = answer.read().decode()
    return page


def test_a_format_without_deletion_keeps_a_tracos_deletion(env: Env) -> None:
    """A customer whose records cannot say "deleted" must not undo a deletion made in TracOS
    when it sends a newer edit of the order (found by a hostile tester)."""
    mapping = env.root / "nodeleted.toml"
    mapping.write_text(
        "[mapping]\n[mapping.fields]\n"
        'number = "id"\ntitle = "t"\ncreated_at = "c"\nupdated_at = "u"\n'
        '[mapping.status]\nfield = "s"\n'
        'values = { P = "pending", I = "in_progress", C = "completed", H = "on_hold", '
        'X = "cancelled" }\n'
    )
    path = write_integrations(
        env.root / "integrations.toml",
        [{"name": "nd", "mapping": str(mapping), "settings": folders(env.root, "nd")}],
    )
    record = {"id": 9, "t": "first", "s": "P", "c": "2024-01-01T00:00:00Z"}
    write_json(env.root / "nd/in/9.json", {**record, "u": "2024-01-01T00:00:00Z"})
    assert env.cli("--integrations", str(path), "run").code == 0
    inserted = env.collection.find_one({"number": 9})
    assert inserted is not None and inserted["deleted"] is False and inserted["deletedAt"] is None
    deleted_at = datetime(2024, 2, 1, tzinfo=UTC)
    env.collection.update_one(
        {"number": 9},
        {"$set": {"deleted": True, "deletedAt": deleted_at, "updatedAt": deleted_at}},
    )
    edit = {**record, "t": "client edit", "s": "I", "u": "2024-03-01T00:00:00Z"}
    write_json(env.root / "nd/in/9-edit.json", edit)
    result = env.cli("--integrations", str(path), "run")
    assert result.code == 0, result.output
    assert summaries(result)["nd"]["updated"] == "1"
    doc = env.collection.find_one({"number": 9})
    assert doc is not None
    assert (doc["title"], doc["status"]) == ("client edit", "in_progress")
    assert doc["deleted"] is True
    assert doc["deletedAt"].replace(tzinfo=UTC) == deleted_at


def test_without_the_file_state_may_not_live_among_the_work_orders(env: Env) -> None:
    result = env.cli("run", CLIENT_STATE_COLLECTION="workorders")
    assert result.code == 2, result.output
    assert "CLIENT_STATE_COLLECTION: 'workorders' is MONGO_COLLECTION" in result.output


def test_values_from_the_environment_and_url_queries_never_show_in_errors(env: Env) -> None:
    path = write_integrations(
        env.root / "integrations.toml",
        [
            {
                "name": "initech",
                "connector": "http",
                "settings": {
                    "client_api_url": "http://127.0.0.1:99999/?apikey=TopSecretKey77",
                    "client_api_timeout_seconds": "${INITECH_TIMEOUT}",
                },
            }
        ],
    )
    result = env.cli("--integrations", str(path), "run", INITECH_TIMEOUT="SuperSecretPw42xyz")
    assert result.code == 2, result.output
    assert "settings.client_api_timeout_seconds" in result.output
    assert "settings.client_api_url" in result.output
    assert "SuperSecretPw42xyz" not in result.output
    assert "TopSecretKey77" not in result.output
    # Without the file, the same URL in the environment.
    plain = env.cli(
        "run",
        CLIENT_CONNECTOR="http",
        CLIENT_API_URL="http://127.0.0.1:99999/?apikey=TopSecretKey77",
    )
    assert plain.code == 2 and "CLIENT_API_URL" in plain.output
    assert "TopSecretKey77" not in plain.output


def test_a_signal_fails_only_the_integrations_it_cut_short(env: Env) -> None:
    """acme has finished when SIGTERM comes; initech still waits on an API that never answers:
    only initech is failed by the signal (found by a hostile tester)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing ever answers
    try:
        path = write_integrations(
            env.root / "integrations.toml",
            [
                {"name": "acme", "settings": folders(env.root, "acme")},
                {
                    "name": "initech",
                    "connector": "http",
                    "tracos": {"collection": "initech_workorders"},
                    "settings": {
                        "client_api_url": f"http://127.0.0.1:{silent.getsockname()[1]}",
                        "client_api_timeout_seconds": 60,
                    },
                },
            ],
        )
        write_json(env.root / "acme/in/1.json", client_record(1))
        proc = env.popen("--integrations", str(path), "run", REPORT_PATH=str(env.root / "r.json"))
        wait_until((env.root / "acme/in/processed/1.json").exists, proc, 30)
        time.sleep(0.5)  # acme's run ends (its outbound finds nothing) before the signal
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        silent.close()
    assert proc.returncode == 1, out + err
    report = read_json(env.root / "r.json")["integrations"]
    assert report["acme"]["status"] == "ok", report
    assert report["initech"]["status"] == "failed"
    assert "stopped by a signal" in report["initech"]["error"]


def test_connector_variables_left_in_the_environment_are_said_to_be_ignored(env: Env) -> None:
    path = two_customers(env)
    result = env.cli("--integrations", str(path), "run", CLIENT_TIMEZONE="America/Sao_Paulo")
    assert result.code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "config.ignored" in line]
    assert len(warnings) == 1, result.output  # once, not once per integration
    assert "CLIENT_TIMEZONE" in warnings[0] and "DATA_INBOUND_DIR" in warnings[0]


def test_an_order_its_mapping_cannot_write_is_skipped_and_the_others_go_out(
    env: Env, mongo: MongoClient[dict[str, Any]]
) -> None:
    # 0001-01-01T00:00Z is a local time in year 0 in São Paulo: that order alone is refused, on
    # every run, with its reason; the orders around it go out and are marked.
    (env.root / "globex.toml").write_text(
        "[mapping]\n"
        'date_format = "%d/%m/%Y %H:%M"\n'
        'timezone = "America/Sao_Paulo"\n'
        "[mapping.fields]\n"
        'number = "id"\ntitle = "t"\ncreated_at = "c"\nupdated_at = "u"\n'
        "[mapping.status]\n"
        'field = "s"\n'
        'values = { P = "pending", I = "in_progress", C = "completed", H = "on_hold", '
        'X = "cancelled" }\n'
    )
    path = two_customers(env, mapping=str(env.root / "globex.toml"))
    globex = mongo[env.database]["globex_workorders"]
    globex.insert_many(
        [
            tracos_doc(
                n,
                isSynced=False,
                **({"createdAt": datetime(1, 1, 1, tzinfo=UTC)} if n == 2 else {}),
            )
            for n in (1, 2, 3)
        ]
    )
    for _ in range(2):
        result = env.cli("--integrations", str(path), "run", "--only", "globex")
        assert result.code == 0, result.output
        assert "Traceback" not in result.output and "run.crashed" not in result.output
        assert (
            summaries(result)["globex"]["skipped"],
            result.output.count("outbound.refused"),
        ) == (
            "1",
            1,
        )
        assert (
            "createdAt 0001-01-01T00:00:00.000Z cannot be written in America/Sao_Paulo as "
            "%d/%m/%Y %H:%M" in result.output
        )
    assert sorted(p.name for p in (env.root / "globex/out").iterdir()) == ["1.json", "3.json"]
    assert sorted(d["number"] for d in globex.find({"isSynced": True})) == [1, 3]


def test_a_mapping_path_nested_too_deep_is_a_configuration_error(env: Env) -> None:
    deep = ".".join(["x"] * 260)
    (env.root / "deep.toml").write_text(
        "[mapping]\n"
        "[mapping.fields]\n"
        f'number = "id"\ntitle = "{deep}"\ncreated_at = "c"\nupdated_at = "u"\n'
        "[mapping.status]\n"
        'field = "s"\n'
        'values = { P = "pending", I = "in_progress", C = "completed", H = "on_hold", '
        'X = "cancelled" }\n'
    )
    path = two_customers(env, mapping=str(env.root / "deep.toml"))
    result = env.cli("--integrations", str(path), "run")
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    # (The log line shortens the long message in its middle; the start names the file.)
    assert "config.invalid" in result.output
    assert "is 260 names deep (at most 32)" in result.output
