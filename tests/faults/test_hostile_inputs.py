"""Inputs nobody listed: hypothesis generates hostile file names (any bytes a file system takes,
long ones included) and hostile records (text that is not valid Unicode, huge and deeply nested
values, odd numbers, every date shape), mixes them with good files and an unsynced TracOS
document, and after each run checks that one bad input cost only itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient

from tests.builders import client_record, tracos_doc
from tests.server import Server
from tests.support.environ import cli_environ

GOOD = 3  # good files, orderNo 1..3; hostile records use 1000 and up
EXPORTED = 500  # the unsynced TracOS document

NAME_BYTES = st.binary(min_size=1, max_size=250).filter(
    lambda b: b"/" not in b and b"\0" not in b and not b.startswith(b".")
)

DATES = st.one_of(
    st.sampled_from(
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+14:00",
            "2024-05-01T12:00:00-12:00",
            "2024-05-01 12:00:00.123456789Z",
            "2024-05-01",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:59-01:00",
            "2024-02-30T00:00:00Z",
            "",
            "\ud800",
            "T" * 64,
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
)
TEXT = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "\u202e", "\ufeff", "é" * 3]),
    st.just("x" * (9 * 1024 * 1024)),  # over MongoDB's 16 MB once stored twice
)
NUMBERS = st.one_of(
    st.integers(min_value=1000, max_value=1100),
    st.sampled_from([0, -1, 2**63, 2**64, 1.5, 1e308, True, "1001", None]),
)
DEEP = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children)
    ),
    max_leaves=20,
)


@st.composite
def hostile_records(draw: st.DrawFn) -> Any:
    record = client_record(draw(st.integers(min_value=1000, max_value=1100)))
    for field in draw(st.lists(st.sampled_from(sorted(record)), max_size=4, unique=True)):
        strategy = {
            "orderNo": NUMBERS,
            "summary": TEXT,
            "creationDate": DATES,
            "lastUpdateDate": DATES,
            "deletedDate": DATES,
        }.get(field, st.one_of(st.booleans(), DEEP))
        record[field] = draw(strategy)
    if draw(st.booleans()):
        record["extra"] = draw(DEEP)
    return record


@st.composite
def hostile_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["record", "array", "bytes", "nested"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "nested":
        depth = draw(st.integers(min_value=1, max_value=5000))
        return b"[" * depth + b"]" * depth
    value = (
        draw(hostile_records())
        if kind == "record"
        else draw(st.lists(hostile_records(), max_size=3))
    )
    # ensure_ascii: lone surrogates travel as \\ud800 escapes, as a real client would send them.
    return json.dumps(value, ensure_ascii=True).encode()


def client_files_in(folder: Path) -> list[str]:
    """The client's own files in an archive folder (the reasons written beside them excluded)."""
    if not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if not p.name.endswith(".error.json")]


def run_cli(root: Path, uri: str, database: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracos_sync", "run"],
        cwd=root,
        env=cli_environ(uri, database, root / "in", root / "out", **extra),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    files=st.lists(st.tuples(NAME_BYTES, hostile_files()), min_size=1, max_size=5),
    log_format=st.sampled_from(["text", "json"]),
)
# The longest names a file system takes, bad (a reason must fit beside) and good; bytes that
# are not UTF-8; a record TracOS cannot store.
@example(files=[(b"x" * 250, b"{not json")], log_format="json")
@example(files=[(b"y" * 250, json.dumps(client_record(1001)).encode())], log_format="text")
@example(files=[(b"\xff\xfe" * 100, b"[1, 2]")], log_format="json")
@example(
    files=[(b"big", json.dumps(client_record(1002, summary="x" * 9_000_000)).encode())],
    log_format="text",
)
def test_one_bad_input_costs_only_itself(
    server: Server,
    mongo: MongoClient[dict[str, Any]],
    files: list[tuple[bytes, bytes]],
    log_format: str,
) -> None:
    database = f"h_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inbound = root / "in"
        inbound.mkdir()
        dropped: set[bytes] = set()
        for stem, content in files:
            name = stem + b".json"
            if name in dropped:
                continue
            path = os.fsencode(inbound) + b"/" + name
            with open(path, "wb") as handle:
                handle.write(content)
            # Written long ago: a file that does not parse is judged, not left as maybe still
            # being written.
            os.utime(path, (time.time() - 600, time.time() - 600))
            dropped.add(name)
        for number in range(1, GOOD + 1):
            (inbound / f"good-{number}.json").write_text(json.dumps(client_record(number)))
        collection = mongo[database]["workorders"]
        collection.insert_one(tracos_doc(EXPORTED, isSynced=False))
        try:
            result = run_cli(root, server.uri, database, LOG_FORMAT=log_format)
            output = result.stdout + result.stderr
            assert result.returncode == 0, output
            assert "Traceback" not in output and "run.crashed" not in output, output
            # Every input taken: in processed/ or in rejected/ with its reason.
            assert not [p for p in os.listdir(inbound) if p.endswith(".json")], output
            processed = client_files_in(inbound / "processed")
            rejected = client_files_in(inbound / "rejected")
            assert len(processed) + len(rejected) == len(dropped) + GOOD, output
            for name in rejected:
                reasons = [
                    p
                    for p in os.listdir(inbound / "rejected")
                    if p != name and p.startswith(name) and p.endswith(".error.json")
                ]
                assert reasons, f"{name!r} rejected without its reason"
            # The good files applied, the TracOS document exported.
            for number in range(1, GOOD + 1):
                assert collection.find_one({"number": number})["title"] == f"Order {number}"
            assert (root / "out" / f"{EXPORTED}.json").exists(), output
            assert collection.find_one({"number": EXPORTED})["isSynced"] is True
            if log_format == "json":
                for line in result.stderr.splitlines():
                    json.loads(line)
            # And nothing is left for a second run to trip on.
            again = run_cli(root, server.uri, database)
            assert again.returncode == 0, again.stdout + again.stderr
        finally:
            mongo.drop_database(database)
