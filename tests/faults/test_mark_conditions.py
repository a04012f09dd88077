"""SPEC §4 and §8 "A mark never swallows an edit": the mark is conditional on every exported
field as read, and ``isSynced`` values other than true, false or missing are exported and
reported, never silently ignored."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.builders import read_json, tracos_doc
from tests.conftest import Env
from tests.faults.test_frozen_neighbour import HOLD_LOCK, temps_in
from tests.support.watching import wait_until


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param({"title": "edited in TracOS"}, id="title"),
        pytest.param({"status": "completed"}, id="status"),
        pytest.param({"description": "edited"}, id="description"),
        pytest.param({"deleted": True}, id="deleted"),
    ],
)
def test_an_edit_that_keeps_updated_at_is_not_marked_as_delivered(
    env: Env, edit: dict[str, object]
) -> None:
    env.collection.insert_many([tracos_doc(1), tracos_doc(2)])
    env.outbound.mkdir(parents=True)
    # A live neighbour holds the folder: the run has read the documents and waits to write.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(env.outbound)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        proc = env.popen("outbound", LOCK_TIMEOUT_SECONDS="60")
        wait_until(lambda: len(temps_in(env.outbound)) == 2, proc, 60)
        # Another TracOS writer edits order 1 without touching updatedAt.
        env.collection.update_one({"number": 1}, {"$set": {**edit, "isSynced": False}})
    finally:
        holder.kill()
        holder.wait(10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert "requeued=1" in out + err and "exported=1" in out + err, out + err
    one = env.collection.find_one({"number": 1})
    assert one is not None and one["isSynced"] is False, "the edit was swallowed"
    again = env.cli("outbound")
    assert again.code == 0, again.output
    assert again.counts()["exported"] == 1
    written = read_json(env.outbound / "1.json")
    if "title" in edit:
        assert written["summary"] == "edited in TracOS"
    if "status" in edit:
        assert written["isDone"] is True
    if "deleted" in edit:
        assert written["isDeleted"] is True


ODD_VALUES = [0, "0", "false", 1, "yes", 0.0]


def test_odd_is_synced_values_are_exported_reported_and_checked(env: Env) -> None:
    env.collection.insert_many(
        [tracos_doc(n, isSynced=value) for n, value in enumerate(ODD_VALUES, start=1)]
        + [tracos_doc(50, isSynced=True), tracos_doc(51, isSynced=False), tracos_doc(52)]
    )
    check = env.cli("check")
    line = next(x for x in check.stdout.splitlines() if "isSynced values" in x)
    assert line.startswith("ok") and f"{len(ODD_VALUES)} documents" in line, check.output
    result = env.cli("outbound")
    assert result.code == 0, result.output
    assert result.counts()["exported"] == len(ODD_VALUES) + 2
    warnings = [x for x in result.output.splitlines() if "outbound.odd_is_synced" in x]
    assert len(warnings) == 1 and f"count={len(ODD_VALUES)}" in warnings[0], result.output
    assert env.collection.count_documents({"isSynced": True}) == len(ODD_VALUES) + 3
    after = env.cli("check")
    assert "all true, false or missing" in after.stdout, after.output
