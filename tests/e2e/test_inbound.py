"""Inbound through the CLI against a real server: SPEC §2 and §3."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from tests.builders import (
    T0,
    TRACOS_FIELDS,
    aged,
    client_record,
    read_json,
    tracos_doc,
    write_json,
)
from tests.conftest import Env


def test_new_file_is_inserted_mapped_and_archived(env: Env) -> None:
    write_json(
        env.inbound / "7.json",
        client_record(7, summary="Replace pump seal", isDone=True, isPending=False),
    )
    result = env.cli("inbound")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["files"], counts["inserted"], counts["rejected"]) == (1, 1, 0)
    doc = env.collection.find_one({"number": 7})
    assert doc is not None
    assert doc["title"] == "Replace pump seal"
    assert doc["description"] == "Replace pump seal"
    assert doc["status"] == "completed"
    assert doc["createdAt"] == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert doc["updatedAt"] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert doc["deleted"] is False and doc["deletedAt"] is None
    assert doc["isSynced"] is True and isinstance(doc["syncedAt"], datetime)
    assert "orderNo" not in doc and "summary" not in doc
    assert not (env.inbound / "7.json").exists()
    assert (env.processed / "7.json").exists()


def test_inbound_writes_do_not_echo_back_outbound(env: Env) -> None:
    write_json(env.inbound / "1.json", client_record(1))
    result = env.cli("run")
    assert result.code == 0, result.output
    assert result.counts()["inserted"] == 1
    assert result.counts()["exported"] == 0
    assert not (env.outbound / "1.json").exists()


def test_array_file_inserts_every_record(env: Env) -> None:
    write_json(env.inbound / "page.json", [client_record(n) for n in range(1, 6)])
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert result.counts()["inserted"] == 5
    assert result.counts()["files"] == 1
    assert env.collection.count_documents({}) == 5
    assert (env.processed / "page.json").exists()


def test_update_only_when_client_copy_is_strictly_newer(env: Env) -> None:
    env.collection.insert_many(
        [
            tracos_doc(1, updatedAt=T0, description="TracOS notes"),
            tracos_doc(2, updatedAt=T0),
            tracos_doc(3, updatedAt=T0),
        ]
    )
    write_json(
        env.inbound / "1.json",
        client_record(
            1,
            summary="newer",
            lastUpdateDate="2024-05-01T12:00:00.001Z",
            isDone=True,
            isPending=False,
            creationDate="2020-01-01T00:00:00Z",
        ),
    )
    write_json(
        env.inbound / "2.json",
        client_record(2, summary="equal", lastUpdateDate="2024-05-01T12:00:00Z"),
    )
    write_json(
        env.inbound / "3.json",
        client_record(3, summary="older", lastUpdateDate="2024-05-01T11:59:59Z"),
    )
    result = env.cli("inbound")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["inserted"], counts["updated"], counts["stale"]) == (0, 1, 2)
    one = env.collection.find_one({"number": 1})
    assert one is not None
    assert one["title"] == "newer" and one["status"] == "completed"
    assert one["description"] == "TracOS notes", "description belongs to TracOS after insert"
    assert one["createdAt"] == datetime(2024, 4, 1, 8, 0, tzinfo=UTC), (
        "createdAt set on insert only"
    )
    assert one["isSynced"] is True
    for number in (2, 3):
        doc = env.collection.find_one({"number": number})
        assert doc is not None and doc["title"] == f"TracOS order {number}"
        assert "isSynced" not in doc
    assert sorted(p.name for p in env.processed.iterdir()) == ["1.json", "2.json", "3.json"]


def test_tracos_dates_stored_as_strings_are_compared_as_instants(env: Env) -> None:
    env.collection.insert_many(
        [
            tracos_doc(1, updatedAt="2024-05-01T09:00:00-03:00"),  # = 12:00Z
            tracos_doc(2, updatedAt="2024-05-01T09:00:00-03:00"),
        ]
    )
    write_json(env.inbound / "1.json", client_record(1, lastUpdateDate="2024-05-01T12:00:00Z"))
    write_json(
        env.inbound / "2.json",
        client_record(2, summary="newer", lastUpdateDate="2024-05-01T12:30:00Z"),
    )
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert (result.counts()["updated"], result.counts()["stale"]) == (1, 1)
    two = env.collection.find_one({"number": 2})
    assert two is not None
    assert two["title"] == "newer"
    assert two["updatedAt"] == datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "stored as a BSON date"


def test_invalid_record_in_array_quarantines_file_but_applies_valid_ones(env: Env) -> None:
    write_json(
        env.inbound / "42.json",
        [
            client_record(1),
            client_record(2, orderNo=-4),
            client_record(3, isDone=True),  # isPending is also true: ambiguous
            client_record(4, lastUpdateDate="yesterday"),
        ],
    )
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert result.counts()["inserted"] == 1
    assert result.counts()["rejected"] == 3
    assert env.collection.count_documents({}) == 1
    assert (env.rejected / "42.json").exists()
    report = read_json(env.rejected / "42.json.error.json")
    assert report["file"] == "42.json"
    problems = {(p["record"], p["path"]): p["reason"] for p in report["problems"]}
    assert "minimum" in problems[(1, "$.orderNo")]
    assert "ambiguous status" in problems[(2, "$")]
    assert "ISO 8601" in problems[(3, "$.lastUpdateDate")]


def test_unparsable_file_is_rejected_with_reason(env: Env) -> None:
    (env.inbound).mkdir(parents=True)
    (env.inbound / "broken.json").write_text('{"orderNo": 1,')
    aged(env.inbound / "broken.json")  # its writer long done: judged, not left for later
    (env.inbound / "scalar.json").write_text("42")
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert result.counts()["rejected"] == 2
    assert result.counts()["files"] == 2
    broken = read_json(env.rejected / "broken.json.error.json")
    assert broken["problems"][0]["path"] == "$"
    assert "not valid JSON" in broken["problems"][0]["reason"]
    scalar = read_json(env.rejected / "scalar.json.error.json")
    assert "expected a work order object" in scalar["problems"][0]["reason"]


def test_seed_solution_shape_and_unknown_fields(env: Env) -> None:
    record = client_record(
        5,
        isActive=True,
        isPending=False,
        isSynced=False,
        **{"priority": "high", "$where": "x", "a.b": 1},
    )
    write_json(env.inbound / "5.json", record)
    result = env.cli("inbound", LOG_LEVEL="DEBUG")
    assert result.code == 0, result.output
    doc = env.collection.find_one({"number": 5}, {"_id": 0})
    assert doc is not None
    assert doc["status"] == "in_progress"
    assert set(doc) == TRACOS_FIELDS
    assert "unknown_fields_ignored" in result.output


def test_no_status_flag_means_in_progress_and_deleted_takes_last_update(env: Env) -> None:
    write_json(
        env.inbound / "9.json",
        client_record(9, isPending=False, isDeleted=True, lastUpdateDate="2024-05-02T00:00:00Z"),
    )
    assert env.cli("inbound").code == 0
    doc = env.collection.find_one({"number": 9})
    assert doc is not None
    assert doc["status"] == "in_progress"
    assert doc["deleted"] is True
    assert doc["deletedAt"] == datetime(2024, 5, 2, tzinfo=UTC)


def test_naive_dates_read_in_client_timezone_and_offsets_converted(env: Env) -> None:
    write_json(
        env.inbound / "1.json",
        client_record(
            1, creationDate="2024-05-01T09:00:00", lastUpdateDate="2024-05-01T10:30:00.123456+02:00"
        ),
    )
    assert env.cli("inbound", CLIENT_TIMEZONE="America/Sao_Paulo").code == 0
    doc = env.collection.find_one({"number": 1})
    assert doc is not None
    assert doc["createdAt"] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert doc["updatedAt"] == datetime(2024, 5, 1, 8, 30, 0, 123000, tzinfo=UTC)


def test_archived_file_is_never_overwritten(env: Env) -> None:
    write_json(env.inbound / "3.json", client_record(3, summary="first"))
    assert env.cli("inbound").code == 0
    write_json(
        env.inbound / "3.json",
        client_record(3, summary="second", lastUpdateDate="2024-06-01T00:00:00Z"),
    )
    assert env.cli("inbound").code == 0
    assert read_json(env.processed / "3.json")["summary"] == "first"
    assert read_json(env.processed / "3~1.json")["summary"] == "second"


def test_same_number_twice_in_one_batch_applies_in_order(env: Env) -> None:
    older = write_json(
        env.inbound / "a.json",
        client_record(8, summary="older", lastUpdateDate="2024-05-01T00:00:00Z"),
    )
    newer = write_json(
        env.inbound / "b.json",
        client_record(8, summary="newer", lastUpdateDate="2024-05-03T00:00:00Z"),
    )
    os.utime(older, (1_000_000, 1_000_000))
    os.utime(newer, (2_000_000, 2_000_000))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert (result.counts()["inserted"], result.counts()["updated"]) == (1, 1)
    docs = list(env.collection.find({"number": 8}))
    assert len(docs) == 1
    assert docs[0]["title"] == "newer"


def test_odd_directory_entries_never_hang_or_crash(env: Env, tmp_path: Path) -> None:
    env.inbound.mkdir(parents=True)
    os.mkfifo(env.inbound / "fifo.json")
    (env.inbound / "dir.json").mkdir()
    (env.inbound / "dangling.json").symlink_to(env.inbound / "nowhere.json")
    outside = write_json(tmp_path / "outside" / "secret.json", client_record(66))
    (env.inbound / "escape.json").symlink_to(outside)
    write_json(env.inbound / ".hidden.json", client_record(67))
    write_json(env.inbound / "partial.json.tmp", client_record(68))
    write_json(env.inbound / "sub" / "nested.json", client_record(69))
    write_json(env.inbound / "ok.json", client_record(70))
    result = env.cli("inbound", timeout=60)
    assert result.code == 0, result.output
    assert result.counts()["files"] == 1
    assert [d["number"] for d in env.collection.find()] == [70]
    for name in (
        "fifo.json",
        "dir.json",
        "dangling.json",
        "escape.json",
        ".hidden.json",
        "partial.json.tmp",
    ):
        assert os.path.lexists(env.inbound / name), name
    assert outside.exists()
    assert "not a regular file" in result.output


def test_abandoned_claim_of_a_dead_instance_is_recovered(env: Env) -> None:
    import socket

    host = socket.gethostname().replace("-", "_")
    claim = env.inbound / ".claims" / f"{host}-999999-deadbeef"
    write_json(claim / "11.json", client_record(11))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert env.collection.count_documents({"number": 11}) == 1
    assert (env.processed / "11.json").exists()
    assert not claim.exists()


def test_a_relative_symlink_to_a_file_in_the_folder_is_taken(env: Env, tmp_path: Path) -> None:
    write_json(env.inbound / "target.data", client_record(71))
    (env.inbound / "71.json").symlink_to("target.data")  # relative, as a client would make it
    outside = write_json(tmp_path / "outside" / "secret.json", client_record(72))
    (env.inbound / "escape.json").symlink_to(os.path.relpath(outside, env.inbound))
    result = env.cli("inbound")
    assert result.code == 0, result.output
    assert [d["number"] for d in env.collection.find()] == [71]
    assert os.path.lexists(env.inbound / "escape.json") and outside.exists()
