"""The command line as a user meets it: entry points, summary, exit codes, config, secrets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import pytest
from pymongo import MongoClient

from tests.builders import client_record, tracos_doc, write_json
from tests.conftest import Env
from tests.server import ROOT, free_port
from tests.support.claims import left_in_claims
from tracos_sync.cli import with_default_command

SUMMARY_KEYS = {
    "files",
    "inserted",
    "updated",
    "stale",
    "rejected",
    "exported",
    "skipped",
    "seconds",
}


def test_seed_then_run_syncs_both_ways_and_second_run_is_a_no_op(env: Env) -> None:
    seeded = env.cli("seed")
    assert seeded.code == 0, seeded.output
    assert env.collection.count_documents({"isSynced": {"$exists": True}}) == 0
    assert len(list(env.inbound.glob("*.json"))) == 12
    first = env.cli("run")
    assert first.code == 0, first.output
    counts = first.counts()
    assert (counts["files"], counts["inserted"], counts["rejected"], counts["exported"]) == (
        12,
        10,
        2,
        10,
    )
    assert len(list(env.processed.glob("*.json"))) == 10
    assert len(list(env.rejected.glob("*.error.json"))) == 2
    assert len(list(env.outbound.glob("*.json"))) == 10
    second = env.cli("run")
    assert second.code == 0
    assert sum(v for k, v in second.counts().items() if k != "seconds") == 0
    assert env.cli("seed", "--if-empty").code == 0
    assert len(list(env.inbound.glob("*.json"))) == 0, "--if-empty does not seed twice"
    # Plain seed into data that is there is refused: sample files could overwrite real orders.
    env.collection.update_one({"number": 1}, {"$set": {"title": "real work"}})
    refused = env.cli("seed")
    assert refused.code == 2, refused.output
    assert "seed.refused" in refused.output and "--force" in refused.output
    assert len(list(env.inbound.glob("*.json"))) == 0
    assert env.cli("seed", "--force").code == 0
    assert len(list(env.inbound.glob("*.json"))) == 12


def test_summary_line_in_text_and_json(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    text = env.cli("run")
    assert set(text.summary()) >= SUMMARY_KEYS
    write_json(env.inbound / "2.json", client_record(2))
    as_json = env.cli("run", LOG_FORMAT="json")
    assert as_json.code == 0
    events = [json.loads(line) for line in as_json.stderr.splitlines()]
    summaries = [e for e in events if e["event"] == "run.summary"]
    assert len(summaries) == 1
    assert set(summaries[0]) >= SUMMARY_KEYS
    assert summaries[0]["inserted"] == 1


def test_database_unreachable_exits_1_within_budget_and_leaves_inputs(env: Env) -> None:
    """Something listens and never answers (not a refusal): an outage, retried for the
    budget."""
    write_json(env.inbound / "1.json", client_record(1))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog, and nothing ever answers
        dead = f"mongodb://127.0.0.1:{silent.getsockname()[1]}/?directConnection=true"
        started = time.monotonic()
        result = env.cli("run", MONGO_URI=dead, MONGO_RETRY_SECONDS="2")
        elapsed = time.monotonic() - started
    assert result.code == 1, result.output
    assert elapsed < 15, elapsed
    assert (env.inbound / "1.json").exists()
    assert "Traceback" not in result.output
    assert "mongo.retrying" in result.output
    assert result.summary()["status"] == "failed"


def test_failed_write_gives_claimed_files_back(env: Env, mongo: MongoClient[Any]) -> None:
    """A non-retryable database error: exit 1, and the claimed file is back in the inbound
    folder for the next run (nothing archived, nothing lost)."""
    write_json(env.inbound / "1.json", client_record(1))
    mongo.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": ["insert"], "errorCode": 2, "errmsg": "injected"},
        }
    )
    try:
        result = env.cli("inbound")
    finally:
        mongo.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert result.code == 1, result.output
    assert (env.inbound / "1.json").exists()
    assert not list(env.processed.iterdir())
    assert not left_in_claims(env.inbound)
    retry = env.cli("inbound")
    assert retry.code == 0 and retry.counts()["inserted"] == 1


def test_bad_configuration_exits_2_naming_the_variable(env: Env) -> None:
    for variable, value in [
        ("BATCH_SIZE", "0"),
        ("CLIENT_TIMEZONE", "Mars/Olympus"),
        ("MONGO_RETRY_SECONDS", "soon"),
        ("LOG_FORMAT", "xml"),
        ("CLIENT_CONNECTOR", "carrier-pigeon"),
        ("MONGO_URI", "postgres://nope"),
    ]:
        result = env.cli("run", **{variable: value})
        assert result.code == 2, (variable, result.output)
        assert variable in result.output, (variable, result.output)
        assert "Traceback" not in result.output
    assert not env.inbound.exists(), "nothing is touched before the configuration is valid"


def test_credentials_never_appear_in_output(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    uri = f"mongodb://svc-user:Sup3rS3cret%21@127.0.0.1:{free_port()}/?directConnection=true"
    report = env.root / "report.json"
    for level in ("INFO", "DEBUG"):
        result = env.cli(
            "run", MONGO_URI=uri, MONGO_RETRY_SECONDS="1", LOG_LEVEL=level, REPORT_PATH=str(report)
        )
        assert result.code == 1
        assert "unavailable" in report.read_text()
        for secret in ("Sup3rS3cret", "svc-user"):
            assert secret not in result.output, result.output
            assert secret not in report.read_text()
    bad = env.cli("run", MONGO_URI="mongodb://svc-user:Sup3rS3cret@/bad[host")
    assert bad.code == 2
    assert "Sup3rS3cret" not in bad.output


def test_env_file_is_read_and_environment_wins(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    (env.root / ".env").write_text(f"MONGO_DATABASE={env.database}_dotenv\nBATCH_SIZE=0\n")
    # BATCH_SIZE=0 from .env is invalid...
    assert env.cli("run").code == 2
    # ...unless the environment overrides it; MONGO_DATABASE in the environment wins too.
    result = env.cli("run", BATCH_SIZE="5")
    assert result.code == 0, result.output
    assert env.collection.count_documents({"number": 1}) == 1


def test_entry_points_run_the_same_cli(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    main = subprocess.run(
        [sys.executable, str(ROOT / "src" / "main.py")],
        cwd=env.root,
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert main.returncode == 0, main.stderr
    assert "run.summary" in main.stderr and "inserted=1" in main.stderr
    script = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "tracos-sync"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0
    for command in ("run", "inbound", "outbound", "seed"):
        assert command in script.stdout
    usage = env.cli("frobnicate")
    assert usage.code == 2


def test_transient_failures_are_retried_and_the_run_succeeds(
    env: Env, mongo: MongoClient[Any]
) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    env.collection.insert_one(tracos_doc(2))
    mongo.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 4},
            "data": {"failCommands": ["insert", "find", "update"], "closeConnection": True},
        }
    )
    try:
        result = env.cli("run", MONGO_RETRY_SECONDS="20")
    finally:
        mongo.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
    assert result.code == 0, result.output
    assert (result.counts()["inserted"], result.counts()["exported"]) == (1, 1)
    assert env.collection.count_documents({"isSynced": True}) == 2
    assert "mongo.retrying" in result.output, "more failures than the driver's one retry absorbs"


def test_configuration_errors_follow_the_log_format_and_check_says_fail(env: Env) -> None:
    as_json = env.cli("run", LOG_FORMAT="json", BATCH_SIZE="0")
    assert as_json.code == 2
    lines = as_json.stderr.splitlines()
    assert lines and all(json.loads(line)["event"] == "config.invalid" for line in lines)
    checked = env.cli("check", BATCH_SIZE="0")
    assert checked.code == 2
    assert "FAIL  configuration" in checked.stdout and "BATCH_SIZE" in checked.stdout


def test_unconfigured_and_nothing_on_the_default_says_so_at_once(env: Env) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("localhost", 27017)) == 0:
            pytest.skip("something listens on the default MongoDB port here")
    environ = env.environ()
    del environ["MONGO_URI"]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / "main.py")],
        cwd=env.root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - started < 10
    assert "MONGO_URI is not set" in proc.stderr and "--embedded" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["run"]),
        (["--embedded"], ["run", "--embedded"]),
        (["--dry-run", "--embedded"], ["run", "--dry-run", "--embedded"]),
        (["--env-file", "x.env", "--embedded"], ["--env-file", "x.env", "run", "--embedded"]),
        (["check", "--embedded"], ["check", "--embedded"]),
        (["--help"], ["run", "--help"]),
        (["-h"], ["run", "-h"]),
        (["--env-file", "x.env", "--help"], ["--env-file", "x.env", "run", "--help"]),
        (["--version"], ["--version"]),
    ],
)
def test_main_py_takes_the_options_of_run(argv: list[str], expected: list[str]) -> None:
    assert with_default_command(argv, "run") == expected


def test_a_named_env_file_that_does_not_exist_is_a_usage_error(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    for args in (["--env-file", "prod.env", "run"], ["--env-file", "prod.env"]):
        result = env.cli(*args)
        assert result.code == 2, result.output
        assert "prod.env" in result.output and "does not exist" in result.output
    assert env.collection.count_documents({}) == 0, "nothing was run on other settings"
