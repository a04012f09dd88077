"""What a newcomer running from the wrong place, or with a slightly wrong setting, is told:
folders and files said with their absolute paths, a folder the service creates warned about,
MONGO_URI ignored by the embedded mode said, an address the driver refuses and a report that
could not be written found at start-up, and a dry run or ``check`` that creates nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env, Result
from tests.server import server_binary

RELATIVE = {"DATA_INBOUND_DIR": "data/inbound", "DATA_OUTBOUND_DIR": "data/outbound"}


def lines_of(result: Result, event: str) -> list[str]:
    return [line for line in result.output.splitlines() if f" {event} " in f"{line} "]


def test_folders_are_shown_absolute_and_a_created_one_is_warned_about(env: Env) -> None:
    env.collection.insert_one(tracos_doc(5))
    result = env.cli("run", **RELATIVE)
    assert result.code == 0, result.output
    [started] = lines_of(result, "run.started")
    assert f"inbound={env.root / 'data/inbound'} " in started, started
    assert f"outbound={env.root / 'data/outbound'}" in started, started
    created = {
        line.split("setting=")[1].split()[0]: line for line in lines_of(result, "folder.created")
    }
    assert set(created) == {"DATA_INBOUND_DIR", "DATA_OUTBOUND_DIR"}, (
        "processed/ and rejected/ are ours"
    )
    for setting, line in created.items():
        assert "[warning" in line, line
        assert f"path={env.root / RELATIVE[setting]} " in line, line
        assert f"working_directory={env.root} " in line, line
    assert (env.root / "data/outbound/5.json").exists()
    again = env.cli("run", **RELATIVE)
    assert again.code == 0 and not lines_of(again, "folder.created"), again.output


def test_an_absolute_folder_that_was_not_there_is_warned_about_without_a_directory(
    env: Env,
) -> None:
    env.collection.insert_one(tracos_doc(5))
    result = env.cli("outbound")
    assert result.code == 0, result.output
    [line] = lines_of(result, "folder.created")
    assert f"path={env.outbound} " in line and "working_directory" not in line, line


def test_watch_starts_with_its_folders_absolute(env: Env) -> None:
    proc = env.popen("watch", WATCH_INTERVAL="3600", **RELATIVE)
    try:
        assert proc.stderr is not None
        started = next(line for line in proc.stderr if "watch.started" in line)
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    assert f"inbound={env.root / 'data/inbound'} " in started, started


def _cli(env: Env, args: list[str], environ: dict[str, str]) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "tracos_sync", *args],
        cwd=env.root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_first_use_as_make_run_does_it_warns_of_nothing(env: Env) -> None:
    environ = env.environ(SECANTUSD_BIN=server_binary(), **RELATIVE)
    del environ["MONGO_URI"]
    seeded = _cli(env, ["seed", "--if-empty", "--embedded"], environ)
    assert seeded.code == 0, seeded.output
    [done] = lines_of(seeded, "seed.done")
    assert f"outbound={env.root / 'data/outbound'}" in done, done
    run = _cli(env, ["run", "--embedded"], environ)
    assert run.code == 0, run.output
    warned = [line for line in (seeded.output + run.output).splitlines() if "[warning" in line]
    assert all("inbound.file_rejected" in line for line in warned), warned  # the 2 bad samples
    assert "embedded.new_database" in seeded.output


@pytest.mark.parametrize("source", ["environment", ".env"])
def test_mongo_uri_ignored_by_the_embedded_mode_is_said_once_without_credentials(
    env: Env, source: str
) -> None:
    uri = "mongodb://svc:S3cret@127.0.0.1:1/"
    environ = env.environ(SECANTUSD_BIN=server_binary(), MONGO_EMBEDDED_DIR=str(env.root / "db"))
    if source == ".env":
        del environ["MONGO_URI"]
        (env.root / ".env").write_text(f"MONGO_URI={uri}\n")
    else:
        environ["MONGO_URI"] = uri
    result = _cli(env, ["check", "--embedded"], environ)
    assert result.code == 0, result.output
    ignored = [line for line in lines_of(result, "config.ignored") if "MONGO_URI" in line]
    assert len(ignored) == 1, result.output
    assert "S3cret" not in result.output and "svc" not in result.output


def test_no_warning_about_mongo_uri_when_it_is_not_set(env: Env) -> None:
    environ = env.environ(SECANTUSD_BIN=server_binary(), MONGO_EMBEDDED_DIR=str(env.root / "db"))
    del environ["MONGO_URI"]
    result = _cli(env, ["check", "--embedded"], environ)
    assert result.code == 0 and "config.ignored" not in result.output, result.output


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("mongodb://bob@127.0.0.1:27999/", "A password is required"),
        ("mongodb://bob:S3cret@127.0.0.1:27999/?authMechanism=MONGODB-X509", "Passwords"),
    ],
)
def test_an_address_the_driver_refuses_is_a_configuration_error_before_anything_is_written(
    env: Env, uri: str, said: str
) -> None:
    for command in ("run", "check"):
        result = env.cli(command, MONGO_URI=uri, REPORT_PATH="report.json", **RELATIVE)
        assert result.code == 2, (command, result.output)
        assert f"MONGO_URI: {said}" in result.output, result.output
        assert "run.crashed" not in result.output and "S3cret" not in result.output
        assert list(env.root.iterdir()) == [], (command, list(env.root.rglob("*")))


@pytest.mark.parametrize("where", ["missing/report.json", "a-file/report.json", "."])
def test_a_report_path_that_cannot_be_written_is_found_at_start_up(env: Env, where: str) -> None:
    (env.root / "a-file").write_text("")
    write_json(env.inbound / "1.json", client_record(1))
    result = env.cli("run", REPORT_PATH=where)
    assert result.code == 2, result.output
    assert "REPORT_PATH: " in result.output and str(env.root) in result.output, result.output
    assert (env.inbound / "1.json").exists(), "nothing was done"
    assert not (env.root / "missing").exists(), "its folder is not created"


def test_a_dry_run_and_check_create_no_embedded_database(env: Env) -> None:
    embedded = {"SECANTUSD_BIN": server_binary(), **RELATIVE}
    dry = env.cli("run", "--embedded", "--dry-run", REPORT_PATH="report.json", **embedded)
    assert dry.code == 0, dry.output
    assert [p.name for p in env.root.iterdir()] == ["report.json"], list(env.root.rglob("*"))
    assert read_json(env.root / "report.json")["dryRun"] is True
    (env.root / "report.json").unlink()
    check = env.cli("check", "--embedded", **embedded)
    assert check.code == 0, check.output
    assert list(env.root.iterdir()) == [], list(env.root.rglob("*"))
    warned = [line for line in check.stdout.splitlines() if line.startswith("WARN")]
    assert warned == [
        f"WARN  {'embedded database':<22} no database at {env.root / '.data/db'}: a run would "
        "create a new, empty one"
    ], check.stdout
    assert check.stdout.splitlines().index(warned[0]) == 1, "right under the configuration"
    run = env.cli("inbound", "--embedded", **embedded)
    assert run.code == 0 and (env.root / ".data/db").is_dir(), run.output
    again = env.cli("check", "--embedded", **embedded)
    assert again.code == 0 and "WARN" not in again.stdout, again.stdout


def test_a_relative_integrations_file_is_said_with_its_absolute_path(env: Env) -> None:
    result = env.cli("run", INTEGRATIONS_FILE="examples/integrations.toml")
    assert result.code == 2, result.output
    assert f"cannot read {env.root / 'examples/integrations.toml'}:" in result.output


def test_replay_without_a_rejected_folder_says_where_it_looked(env: Env) -> None:
    result = env.cli("replay", "nope.json")
    assert result.code == 1, result.output
    [line] = lines_of(result, "replay.no_rejected_folder")
    assert f"folder={env.rejected} " in line and "not_found=nope.json" in line, line


def test_seed_if_empty_and_force_together_is_a_usage_error(env: Env) -> None:
    result = env.cli("seed", "--if-empty", "--force")
    assert result.code == 2, result.output
    assert "--if-empty and --force" in result.output
    assert env.collection.count_documents({}) == 0 and not env.inbound.exists()


def test_the_mapping_file_of_an_integration_is_said_with_its_absolute_path(env: Env) -> None:
    path = env.root / "integrations.toml"
    path.write_text('[[integration]]\nname = "acme"\nmapping = "maps/acme.toml"\n')
    result = env.cli("--integrations", str(path), "check")
    assert result.code == 2, result.output
    assert f"cannot read {env.root / 'maps/acme.toml'}:" in result.output, result.output
