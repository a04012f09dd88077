"""Several instances at once on the same folders and collection: each file is taken by exactly
one, no work order is duplicated, every unsynced document goes out, every instance exits 0."""

from __future__ import annotations

import pytest

from tests.builders import client_record, tracos_doc, write_json
from tests.conftest import Env, Result
from tests.support.claims import left_in_claims

FILES = 400
NEWER = 50  # files that re-send numbers 1..NEWER with a newer copy
DOCUMENTS = 300


@pytest.mark.parametrize("instances", [2, 4])
def test_concurrent_runs_take_each_file_once(env: Env, instances: int) -> None:
    for n in range(1, FILES + 1):
        write_json(env.inbound / f"{n}.json", client_record(n))
    for n in range(1, NEWER + 1):
        write_json(
            env.inbound / f"newer-{n}.json",
            client_record(n, summary=f"newer {n}", lastUpdateDate="2024-06-01T00:00:00Z"),
        )
    env.collection.insert_many([tracos_doc(10_000 + n) for n in range(DOCUMENTS)])

    procs = [env.popen("run", BATCH_SIZE="50") for _ in range(instances)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(Result(proc.returncode, out, err))
    for result in results:
        assert result.code == 0, result.output
    counts = [r.counts() for r in results]

    total_files = FILES + NEWER
    assert sum(c["files"] for c in counts) == total_files
    assert sum(c["inserted"] + c["updated"] + c["stale"] for c in counts) == total_files
    assert sum(c["inserted"] for c in counts) == FILES
    archived = sorted(p.name for p in env.processed.iterdir())
    assert len(archived) == total_files
    assert all("~" not in name for name in archived), "a file was archived twice"
    assert not list(env.inbound.glob("*.json"))
    assert not left_in_claims(env.inbound)

    numbers = [d["number"] for d in env.collection.find({}, {"number": 1})]
    assert len(numbers) == len(set(numbers)) == FILES + DOCUMENTS
    for n in range(1, NEWER + 1):
        doc = env.collection.find_one({"number": n})
        assert doc is not None and doc["title"] == f"newer {n}", n
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0
    exported = {p.name for p in env.outbound.iterdir()}
    assert exported == {f"{10_000 + n}.json" for n in range(DOCUMENTS)}
    assert sum(c["exported"] for c in counts) >= DOCUMENTS  # at least once
