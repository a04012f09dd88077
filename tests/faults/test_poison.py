"""The poison corpus: inputs and settings that once stopped the sync, in both directions and on
every run. Each now costs only itself: the input is quarantined with a specific reason (a TracOS
document: skipped with a warning), the rest of the batch and the other direction go on, and the
next run is a clean no-op. Every case runs through the CLI."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.builders import aged, client_record, read_json, tracos_doc, write_json
from tests.conftest import Env, Result

LATER = "2025-06-01T00:00:00Z"  # after the builders' dates, not ahead of the clock


def reasons(env: Env, name: str) -> str:
    """Every reason written for the rejected file ``name``, as one text."""
    found = [
        p
        for p in env.rejected.iterdir()
        if p.name != name and p.name.startswith(name) and p.name.endswith(".json")
    ]
    assert found, f"no reason file for {name}: {sorted(os.listdir(env.rejected))}"
    return " ".join(p.read_text() for p in found)


def assert_clean_second_run(env: Env) -> None:
    again = env.cli("run")
    assert again.code == 0, again.output
    assert set(again.counts().values()) == {0}, again.output


def with_unsynced_document(env: Env, number: int = 900) -> None:
    env.collection.insert_one(tracos_doc(number, isSynced=False))


def assert_exported(env: Env, number: int = 900) -> None:
    assert (env.outbound / f"{number}.json").exists()
    assert env.collection.find_one({"number": number})["isSynced"] is True


def test_lone_surrogate_in_summary_is_quarantined_and_the_run_goes_on(env: Env) -> None:
    text = json.dumps(client_record(1)).replace('"Order 1"', '"bad \\ud800 text"')
    (env.inbound).mkdir(parents=True)
    (env.inbound / "surrogate.json").write_text(text)
    write_json(env.inbound / "good.json", client_record(2))
    with_unsynced_document(env)
    result = env.cli("run")
    assert result.code == 0, result.output
    assert result.counts()["rejected"] == 1 and result.counts()["inserted"] == 1
    assert "not valid Unicode" in reasons(env, "surrogate.json")
    assert (env.processed / "good.json").exists()
    assert env.collection.count_documents({"number": 1}) == 0
    assert_exported(env)
    assert_clean_second_run(env)


def test_document_over_16_mb_is_quarantined_alone(env: Env) -> None:
    huge = "x" * (9 * 1024 * 1024)  # copied into title and description: over the limit
    write_json(env.inbound / "huge.json", client_record(1, summary=huge))
    # An array file: its good record is applied, the file quarantined for the other.
    write_json(env.inbound / "mixed.json", [client_record(2), client_record(3, summary=huge)])
    aged(env.inbound / "mixed.json")  # a large array is streamed once its writer is done
    write_json(env.inbound / "good.json", client_record(4))
    with_unsynced_document(env)
    result = env.cli("run")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["inserted"], counts["rejected"]) == (2, 2), result.output
    assert "over MongoDB's limit" in reasons(env, "huge.json")
    mixed = reasons(env, "mixed.json")
    assert "orderNo 3" in mixed and "over MongoDB's limit" in mixed and '"record": 1' in mixed
    assert {d["number"] for d in env.collection.find({}, {"number": 1})} == {2, 4, 900}
    assert_exported(env)
    assert_clean_second_run(env)


def test_client_copy_of_a_document_with_an_unreadable_version_is_quarantined(env: Env) -> None:
    env.collection.insert_one(tracos_doc(1, updatedAt="not a date", isSynced=True))
    env.collection.insert_one(tracos_doc(2, updatedAt={"$weird": 1}, isSynced=True))
    write_json(env.inbound / "1.json", client_record(1, lastUpdateDate=LATER))
    write_json(env.inbound / "2.json", client_record(2, lastUpdateDate=LATER))
    result = env.cli("run")
    assert result.code == 0, result.output
    assert result.counts()["rejected"] == 2
    assert "unreadable updatedAt" in reasons(env, "1.json")
    assert "unreadable updatedAt" in reasons(env, "2.json")
    # Never treated as "older": TracOS's documents are untouched.
    assert env.collection.find_one({"number": 1})["title"] == "TracOS order 1"
    assert env.collection.find_one({"number": 2})["title"] == "TracOS order 2"


def test_epoch_millisecond_updated_at_is_an_instant_not_older_than_anything(env: Env) -> None:
    in_2025 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    env.collection.insert_one(tracos_doc(1, updatedAt=in_2025, isSynced=True))
    env.collection.insert_one(tracos_doc(2, updatedAt=float(in_2025), isSynced=True))
    write_json(env.inbound / "old.json", [client_record(1), client_record(2)])  # 2024
    write_json(env.inbound / "new.json", client_record(2, lastUpdateDate="2025-06-01T00:00:00Z"))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert (result.counts()["stale"], result.counts()["updated"]) == (2, 1), result.output
    assert env.collection.find_one({"number": 1})["title"] == "TracOS order 1"
    assert env.collection.find_one({"number": 2})["title"] == "Order 2"


def test_early_years_go_out_with_four_digits_and_come_back_in(env: Env) -> None:
    early = datetime(999, 12, 31, 23, 0, tzinfo=UTC)
    env.collection.insert_one(
        tracos_doc(1, createdAt=early, updatedAt=datetime(5, 1, 1, tzinfo=UTC))
    )
    result = env.cli("outbound")
    assert result.code == 0, result.output
    sent = read_json(env.outbound / "1.json")
    assert sent["creationDate"] == "0999-12-31T23:00:00.000Z"
    assert sent["lastUpdateDate"] == "0005-01-01T00:00:00.000Z"
    # What we send, we can read back.
    write_json(env.inbound / "back.json", {**sent, "summary": "edited", "lastUpdateDate": LATER})
    back = env.cli("inbound")
    assert back.code == 0, back.output
    assert back.counts()["updated"] == 1, back.output


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DATA_OUTBOUND_DIR": "{in}"}, ("DATA_INBOUND_DIR", "DATA_OUTBOUND_DIR")),
        ({"DATA_PROCESSED_DIR": "{out}"}, ("DATA_PROCESSED_DIR", "DATA_OUTBOUND_DIR")),
        ({"DATA_REJECTED_DIR": "{in}/processed"}, ("DATA_PROCESSED_DIR", "DATA_REJECTED_DIR")),
        ({"DATA_OUTBOUND_DIR": "{in}/exports"}, ("DATA_OUTBOUND_DIR", "DATA_INBOUND_DIR")),
        ({"DATA_PROCESSED_DIR": "{in}/a/b"}, ("DATA_PROCESSED_DIR", "DATA_INBOUND_DIR")),
        ({"DATA_INBOUND_DIR": "{out}/in"}, ("DATA_INBOUND_DIR", "DATA_OUTBOUND_DIR")),
    ],
)
def test_overlapping_folders_are_refused_before_anything_is_touched(
    env: Env, overrides: dict[str, str], named: tuple[str, str]
) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    values = {
        k: v.format(**{"in": str(env.inbound), "out": str(env.outbound)})
        for k, v in overrides.items()
    }
    for command in ("run", "check", "watch"):
        result = env.cli(command, **values)
        assert result.code == 2, (command, result.output)
        assert all(name in result.output for name in named), result.output
    assert (env.inbound / "1.json").exists()
    assert env.collection.count_documents({}) == 0


def test_a_partial_unique_index_is_not_a_uniqueness_guarantee(env: Env) -> None:
    env.collection.insert_one(tracos_doc(1, deleted=True, isSynced=True))
    env.collection.create_index(
        [("number", 1)], unique=True, partialFilterExpression={"deleted": {"$eq": False}}
    )
    write_json(env.inbound / "1.json", client_record(1))
    result = env.cli("run")
    assert result.code == 1, result.output
    assert "partial" in result.output and "drop it" in result.output
    assert env.collection.count_documents({"number": 1}) == 1, "never a second document"
    check = env.cli("check")
    assert check.code == 1
    assert "FAIL  index on number" in check.stdout and "partial" in check.stdout


def test_a_folder_that_cannot_be_created_fails_its_direction_only(env: Env) -> None:
    blocker = env.root / "blocker"
    blocker.write_text("a file where a folder should be")
    write_json(env.inbound / "1.json", client_record(1))
    with_unsynced_document(env)
    result = env.cli("run", DATA_PROCESSED_DIR=str(blocker / "processed"))
    assert result.code == 1, result.output
    assert str(blocker) in result.output
    assert (env.inbound / "1.json").exists()
    assert_exported(env)  # outbound ran although inbound could not


def undecodable_name(folder: Path, stem: bytes) -> str:
    """Create a file whose name is not valid UTF-8; returns the name as Python sees it."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = os.fsencode(folder) + b"/" + stem + b".json"
    try:
        with open(raw, "wb") as handle:
            handle.write(b"{not json")
        os.utime(raw, (time.time() - 600, time.time() - 600))  # its writer long done
    except OSError as exc:  # pragma: no cover - a file system that refuses such names
        pytest.skip(f"file system refuses non-UTF-8 names: {exc}")
    return os.fsdecode(stem + b".json")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_names_that_are_not_utf8_are_logged_escaped(env: Env, fmt: str) -> None:
    undecodable_name(env.inbound, b"bad\xff\xfename")
    write_json(env.inbound / "good.json", client_record(1))
    for command in ("run", "check"):
        result = env.cli(command, LOG_FORMAT=fmt)
        assert result.code == 0, result.output
        assert "Traceback" not in result.output and "TypeError" not in result.output
    assert (env.processed / "good.json").exists()
    assert any(os.fsencode(p.name).startswith(b"bad\xff") for p in env.rejected.iterdir())
    # Replay gives the file back under its exact (undecodable) name.
    assert env.cli("replay", LOG_FORMAT=fmt).code == 0
    assert os.fsencode(env.inbound / "bad\udcff\udcfename.json") in [
        os.fsencode(env.inbound / n) for n in os.listdir(env.inbound)
    ]
    if fmt == "json":
        lines = [json.loads(line) for line in run_json(env).stderr.splitlines()]
        assert lines, "every line is JSON"


def run_json(env: Env) -> Result:
    undecodable_name(env.inbound, b"again\xff")
    result = env.cli("run", LOG_FORMAT="json")
    assert result.code == 0, result.output
    assert "again\\\\xff.json" in result.stderr or "again\\xff.json" in result.stderr
    return result


def test_stale_client_copy_does_not_win_when_tracos_date_is_a_string(env: Env) -> None:
    env.collection.insert_one(tracos_doc(1, updatedAt="2030-01-01T00:00:00Z", isSynced=True))
    write_json(env.inbound / "1.json", client_record(1))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert result.counts()["stale"] == 1


def test_the_same_folder_under_a_second_mount_path_is_refused(env: Env) -> None:
    import subprocess

    alias = env.root / "alias"
    env.inbound.mkdir(parents=True)
    alias.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(env.inbound), str(alias)], check=False)
    if mounted.returncode != 0:
        pytest.skip("bind mounts need privileges this machine does not give")
    try:
        write_json(env.inbound / "7.json", client_record(7))
        before = (env.inbound / "7.json").read_bytes()
        with_unsynced_document(env, 7)
        for outbound in (alias, alias / "sub"):
            result = env.cli("run", DATA_OUTBOUND_DIR=str(outbound))
            assert result.code == 2, result.output
            assert "DATA_INBOUND_DIR" in result.output and "DATA_OUTBOUND_DIR" in result.output
        assert (env.inbound / "7.json").read_bytes() == before, "the client's file untouched"
    finally:
        subprocess.run(["umount", str(alias)], check=False)


def test_an_outbound_name_taken_by_a_folder_costs_that_order_only(env: Env) -> None:
    env.collection.insert_many([tracos_doc(n, isSynced=False) for n in range(1, 11)])
    (env.outbound / "7.json").mkdir(parents=True)
    result = env.cli("run", BATCH_SIZE="2")
    assert result.code == 0, result.output
    assert (result.counts()["exported"], result.counts()["skipped"]) == (9, 1), result.output
    assert "7.json" in result.output and "Is a directory" in result.output
    assert env.collection.find_one({"number": 7})["isSynced"] is False
    assert all((env.outbound / f"{n}.json").is_file() for n in range(1, 11) if n != 7)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MONGO_COLLECTION", "a..b"),
        ("MONGO_COLLECTION", "system.users"),
        ("MONGO_DATABASE", "d" * 80),
        ("INBOUND_MIN_AGE_SECONDS", "inf"),
        ("INBOUND_MIN_AGE_SECONDS", "1e300"),
        ("CLAIM_STALE_SECONDS", "1e-9"),
    ],
)
def test_settings_at_their_edges_are_configuration_errors(
    env: Env, variable: str, value: str
) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    for command in ("run", "check"):
        result = env.cli(command, **{variable: value})
        assert result.code == 2, result.output
        assert variable in result.output and "run.crashed" not in result.output
    assert (env.inbound / "1.json").exists()


def test_metrics_that_cannot_be_served_stop_watch_with_a_configuration_error(env: Env) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = env.cli("watch", METRICS_PORT=str(port), METRICS_ADDRESS="127.0.0.1")
    assert result.code == 2, result.output
    assert "METRICS_PORT" in result.output and "run.crashed" not in result.output
    bad_address = env.cli("watch", METRICS_PORT=str(port), METRICS_ADDRESS="256.1.1.1")
    assert bad_address.code == 2, bad_address.output


def test_check_fails_when_duplicate_numbers_keep_the_index_from_being_built(env: Env) -> None:
    env.collection.insert_many([tracos_doc(5), tracos_doc(5), tracos_doc(6)])
    run = env.cli("run")
    assert run.code == 1 and "same number" in run.output
    check = env.cli("check")
    assert check.code == 1, check.stdout
    assert "FAIL  index on number" in check.stdout and "number 5" in check.stdout
