"""What a new user trips on, each said plainly: misspelt variables, the local server looked for
from anywhere, a new empty embedded database, a configuration error that writes nothing, a wrong
MONGO_URI, options given after the command, ``make seed FORCE=1``, ``main.py --help``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders import client_record, write_json
from tests.conftest import Env
from tests.server import ROOT, Server, free_port, server_binary
from tracos_sync import local_server
from tracos_sync.app import AppSettings, Runtime, first_contact
from tracos_sync.app.variables import Unknown, unknown_variables
from tracos_sync.domain.errors import ConfigurationError, DatabaseUnavailable

COMMANDS = ["run", "inbound", "outbound", "watch", "check", "replay", "seed"]


def warned(output: str) -> dict[str, str]:
    """variable -> its config.unknown_variable line."""
    lines = [line for line in output.splitlines() if "config.unknown_variable" in line]
    return {line.split("variable=")[1].split()[0]: line for line in lines}


def test_misspelt_variables_are_warned_about_once_each(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    (env.root / ".env").write_text("DATA_INBOUND_DIRR=elsewhere\nCLIENT_FOO=1\nNOT_OURS=1\n")
    result = env.cli(
        "inbound",
        MONGO_EMBEDED="1",  # a near miss in the environment
        LOG_DIR="/var/log/other",  # another program's: starts like ours, close to nothing
        HOME_DIRR="x",
    )
    assert result.code == 0, result.output
    found = warned(result.output)
    assert set(found) == {"MONGO_EMBEDED", "DATA_INBOUND_DIRR", "CLIENT_FOO"}, result.output
    assert "did_you_mean=MONGO_EMBEDDED" in found["MONGO_EMBEDED"]
    assert "source=environment" in found["MONGO_EMBEDED"]
    assert "did_you_mean=DATA_INBOUND_DIR" in found["DATA_INBOUND_DIRR"]
    assert "source=.env" in found["DATA_INBOUND_DIRR"]
    assert "did_you_mean" not in found["CLIENT_FOO"], "a starting word is not a near miss"


def test_unknown_variables_rules() -> None:
    known = {"MONGO_URI", "MONGO_EMBEDDED", "LOG_LEVEL", "DATA_INBOUND_DIR", "SECANTUSD_BIN"}
    environment = {"mongo_embeded": "1", "LOG_DIR": "x", "PATH": "/bin", "MONGO_URI": "m"}
    dotenv = {"LOG_DIR": "x", "MONGO_URI": "m", "COMPOSE_PROJECT_NAME": "p"}
    assert unknown_variables(environment, dotenv, known, "my.env") == [
        Unknown("LOG_DIR", "my.env", None),  # in our own .env a starting word is enough
        Unknown("MONGO_EMBEDED", "environment", "MONGO_EMBEDDED"),  # names in any case
    ]


def test_the_integrations_files_own_names_are_not_warned_about(env: Env) -> None:
    (env.root / ".env").write_text("CLIENT_ACME_TOKEN=t\n")
    integrations = env.root / "integrations.toml"
    integrations.write_text(
        '[integrations.acme]\nsettings.client_api_url = "http://127.0.0.1:1"\n'
        'settings.client_api_token = "${CLIENT_ACME_TOKEN}"\nconnector = "http"\n'
    )
    result = env.cli("--integrations", str(integrations), "check")
    assert "config.unknown_variable" not in result.output, result.output


def test_the_local_server_is_found_from_the_project_wherever_the_command_runs(env: Env) -> None:
    environ = env.environ(MONGO_EMBEDDED_DIR=str(env.root / "db"))
    del environ["SECANTUSD_BIN"]
    proc = subprocess.run(
        [sys.executable, "-m", "tracos_sync", "check", "--embedded"],
        cwd=env.root,  # no .tools here, none on PATH: the project's own is found
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "embedded.started" in proc.stderr, proc.stderr


def test_a_missing_local_server_says_where_it_looked_and_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECANTUSD_BIN", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv" / ".venv"))
    checkout = tmp_path / "checkout"
    monkeypatch.setattr(local_server, "__file__", str(checkout / "src/tracos_sync/x.py"))
    with pytest.raises(ConfigurationError) as failure:
        local_server.find_server_binary()
    message = str(failure.value)
    tool = ".tools/secantusdb/bin/secantusd-py"
    for place in (tmp_path / tool, checkout / tool, tmp_path / "venv" / tool):
        assert str(place) in message, message
    assert "on PATH" in message and "make tools" in message


def test_a_new_embedded_database_is_announced_with_its_absolute_path(env: Env) -> None:
    relative = {
        "SECANTUSD_BIN": server_binary(),
        "MONGO_EMBEDDED_DIR": "local/db",
        "DATA_INBOUND_DIR": "data/in",
        "DATA_OUTBOUND_DIR": str(env.outbound),
    }
    first = env.cli("inbound", "--embedded", **relative)
    assert first.code == 0, first.output
    line = next(x for x in first.output.splitlines() if "embedded.new_database" in x)
    assert "[info" in line, "first use (make run) is no warning"
    assert f"path={env.root / 'local/db'}" in line, line
    assert f"DATA_INBOUND_DIR={env.root / 'data/in'}" in line, line
    assert "DATA_OUTBOUND_DIR" not in line, "absolute folders are where they say"
    second = env.cli("inbound", "--embedded", **relative)
    assert second.code == 0, second.output
    assert "embedded.new_database" not in second.output, "announced once: when it is new"


@pytest.mark.parametrize(
    "bad",
    [
        {"BATCH_SIZE": "0"},
        {"MONGO_EMBEDDED": "1", "SECANTUSD_BIN": "/nonexistent/secantusd-py"},
        {"MONGO_EMBEDDED": "1", "MONGO_EMBEDDED_DIR": "db", "CLIENT_TIMEZONE": "Mars/Olympus"},
    ],
)
def test_a_configuration_error_leaves_the_directory_as_it_was(
    env: Env, bad: dict[str, str]
) -> None:
    relative = {"DATA_INBOUND_DIR": "data/in", "DATA_OUTBOUND_DIR": "data/out"}
    for command in COMMANDS:
        result = env.cli(command, REPORT_PATH="report.json", **relative, **bad)
        assert result.code == 2, (command, result.output)
        assert list(env.root.iterdir()) == [], (command, list(env.root.rglob("*")))


def test_a_refused_connection_at_first_contact_fails_at_once_naming_the_address(
    env: Env,
) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    port = free_port()
    wrong = f"mongodb://svc:S3cret@127.0.0.1:{port}/?directConnection=true"
    for command in ("run", "watch"):
        started = time.monotonic()
        result = env.cli(command, MONGO_URI=wrong, MONGO_RETRY_SECONDS="30", timeout=60)
        assert result.code == 1, (command, result.output)
        assert time.monotonic() - started < 10, "not the 30 s retry budget"
        assert f"127.0.0.1:{port}" in result.output and "check MONGO_URI" in result.output
        assert "mongo.retrying" not in result.output
        assert "S3cret" not in result.output and "svc" not in result.output
    assert (env.inbound / "1.json").exists()


def test_a_group_option_after_the_command_says_where_it_goes(env: Env) -> None:
    result = env.cli("run", "--integrations", "acme.toml", "--dry-run")
    assert result.code == 2, result.output
    assert "goes before the command" in result.output
    assert "tracos-sync --integrations acme.toml run --dry-run" in result.output
    other = env.cli("run", "--frobnicate")
    assert other.code == 2 and "No such option" in other.output


def test_make_seed_passes_force_when_asked() -> None:
    def seed_line(*extra: str) -> str:
        shown = subprocess.run(
            ["make", "--no-print-directory", "-n", "seed", *extra],
            cwd=ROOT,
            env={**os.environ, "MONGO_URI": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return next(line for line in shown.splitlines() if "tracos-sync seed" in line)

    assert "--force" in seed_line("FORCE=1")
    assert "--force" not in seed_line()
    assert "--force" not in seed_line("FORCE=0")
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "FORCE=1" in shown


def test_main_py_help_is_the_help_of_run() -> None:
    shown = subprocess.run(
        [sys.executable, str(ROOT / "src" / "main.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert shown.returncode == 0, shown.stderr
    assert "Usage: tracos-sync run" in shown.stdout and "--dry-run" in shown.stdout


async def test_once_the_server_was_reached_a_refusal_is_an_outage_again(server: Server) -> None:
    runtime = Runtime(AppSettings(mongo_uri=server.uri), [])
    await first_contact(runtime)
    assert runtime.reached
    runtime.settings.mongo_uri = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    await first_contact(runtime)  # not raised: the retry budget waits it out
    fresh = Runtime(AppSettings(mongo_uri=runtime.settings.mongo_uri), [])
    with pytest.raises(DatabaseUnavailable, match="check MONGO_URI"):
        await first_contact(fresh)
