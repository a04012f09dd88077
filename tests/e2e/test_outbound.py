"""Outbound through the CLI against a real server: SPEC §2 and §4."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.builders import client_record, read_json, tracos_doc, write_json
from tests.conftest import Env


def test_unsynced_documents_are_written_and_marked(env: Env) -> None:
    env.collection.insert_many(
        [
            tracos_doc(1, status="in_progress"),  # no isSynced: TracOS wrote it itself
            tracos_doc(2, isSynced=False, status="on_hold"),
            tracos_doc(3, isSynced=True, syncedAt=datetime(2024, 5, 2, tzinfo=UTC)),
        ]
    )
    result = env.cli("outbound")
    assert result.code == 0, result.output
    assert result.counts()["exported"] == 2
    assert sorted(p.name for p in env.outbound.iterdir()) == ["1.json", "2.json"]
    assert read_json(env.outbound / "1.json") == {
        "orderNo": 1,
        "isActive": True,
        "isCanceled": False,
        "isDone": False,
        "isOnHold": False,
        "isPending": False,
        "isDeleted": False,
        "isSynced": True,
        "summary": "TracOS order 1",
        "creationDate": "2024-04-01T08:00:00.000Z",
        "lastUpdateDate": "2024-05-01T12:00:00.000Z",
        "deletedDate": None,
    }
    assert read_json(env.outbound / "2.json")["isOnHold"] is True
    for number in (1, 2):
        doc = env.collection.find_one({"number": number})
        assert doc is not None
        assert doc["isSynced"] is True
        assert isinstance(doc["syncedAt"], datetime)


def test_string_dates_in_tracos_go_out_as_utc_iso(env: Env) -> None:
    env.collection.insert_one(
        tracos_doc(
            4,
            createdAt="2024-04-01T05:00:00-03:00",
            updatedAt="2024-05-01T12:00:00.5+00:00",
            deleted=True,
            deletedAt="2024-05-01T12:00:00Z",
            status="cancelled",
        )
    )
    result = env.cli("outbound")
    assert result.code == 0, result.output
    out = read_json(env.outbound / "4.json")
    assert out["creationDate"] == "2024-04-01T08:00:00.000Z"
    assert out["lastUpdateDate"] == "2024-05-01T12:00:00.500Z"
    assert out["deletedDate"] == "2024-05-01T12:00:00.000Z"
    assert (out["isDeleted"], out["isCanceled"]) == (True, True)
    doc = env.collection.find_one({"number": 4})
    assert doc is not None and doc["isSynced"] is True


def test_documents_that_cannot_be_understood_are_skipped_not_marked(env: Env) -> None:
    env.collection.insert_many(
        [
            tracos_doc(1, status="exploded"),
            tracos_doc(2, updatedAt="not a date"),
            {"status": "pending", "title": "no number"},
            tracos_doc(3),
        ]
    )
    result = env.cli("outbound")
    assert result.code == 0, result.output
    assert (result.counts()["exported"], result.counts()["skipped"]) == (1, 3)
    assert [p.name for p in env.outbound.iterdir()] == ["3.json"]
    assert env.collection.count_documents({"isSynced": True}) == 1
    assert "unknown status" in result.output


def test_outbound_folder_is_created_and_no_temp_files_remain(env: Env) -> None:
    env.collection.insert_many([tracos_doc(n) for n in range(1, 30)])
    result = env.cli("outbound", DATA_OUTBOUND_DIR=str(env.root / "deep" / "er" / "out"))
    assert result.code == 0, result.output
    names = sorted(p.name for p in (env.root / "deep/er/out").iterdir())
    assert names == sorted(f"{n}.json" for n in range(1, 30))


def test_unwritable_outbound_marks_nothing_and_exits_1(env: Env) -> None:
    env.collection.insert_many([tracos_doc(1), tracos_doc(2)])
    blocker = env.root / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    result = env.cli("outbound", DATA_OUTBOUND_DIR=str(blocker / "out"))
    assert result.code == 1, result.output
    assert env.collection.count_documents({"isSynced": True}) == 0
    assert "run.failed" in result.output
    assert "Traceback" not in result.output


def test_second_run_is_a_no_op(env: Env) -> None:
    env.collection.insert_many([tracos_doc(n) for n in range(1, 4)])
    write_json(env.inbound / "10.json", client_record(10))
    first = env.cli("run")
    assert first.code == 0, first.output
    assert (first.counts()["inserted"], first.counts()["exported"]) == (1, 3)
    second = env.cli("run")
    assert second.code == 0, second.output
    assert {k: v for k, v in second.counts().items() if k != "seconds"} == {
        "files": 0,
        "inserted": 0,
        "updated": 0,
        "stale": 0,
        "echoes": 0,
        "rejected": 0,
        "exported": 0,
        "skipped": 0,
        "requeued": 0,
        "superseded": 0,
        "deferred": 0,
    }


def test_exported_file_sent_back_by_client_is_stale(env: Env) -> None:
    """The round trip TracOS -> client -> TracOS changes nothing and does not loop."""
    env.collection.insert_one(tracos_doc(5))
    assert env.cli("outbound").code == 0
    write_json(env.inbound / "5.json", read_json(env.outbound / "5.json"))
    result = env.cli("run")
    assert result.code == 0, result.output
    assert (result.counts()["stale"], result.counts()["exported"]) == (1, 0)
