"""The bad-input corpus: every case ends quarantined with a specific, readable reason (or, where
the input is acceptable after all, applied), and nothing crashes. Plus fuzz tests of the
decoder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import aged, client_record, read_json
from tests.conftest import Env
from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.mapping import builtin_mapping


def rec(**overrides: Any) -> bytes:
    return orjson.dumps(client_record(overrides.pop("orderNo", 1), **overrides))


# name -> (bytes, expected reason in the .error.json, or None when the file must be accepted)
CORPUS: dict[str, tuple[bytes, str | None]] = {
    "malformed": (b'{"orderNo": 1, "summary": ', "not valid JSON"),
    "empty": (b"", "file is empty"),
    "whitespace": (b"  \n ", "file is empty"),
    "bom": (b"\xef\xbb\xbf" + rec(orderNo=501), None),
    "latin1": ('{"orderNo": 1, "summary": "caf\xe9"}'.encode("latin-1"), "not UTF-8 text"),
    "nested": (b"[" * 2000 + b"]" * 2000, "nested too deeply"),
    "nan": (rec().replace(b'"orderNo":1', b'"orderNo":NaN'), "NaN is not a JSON number"),
    "infinity": (b'{"orderNo": -Infinity}', "-Infinity is not a JSON number"),
    "duplicate-key": (rec()[:-1] + b',"orderNo":2}', "duplicate key 'orderNo'"),
    "number-as-string": (rec(orderNo="17"), "\"17\" is not of type 'integer'"),
    "flag-as-string": (rec(isDone="true"), "\"true\" is not of type 'boolean'"),
    "order-zero": (rec(orderNo=0), "0 is less than the minimum of 1"),
    "order-negative": (rec(orderNo=-5), "-5 is less than the minimum of 1"),
    "order-float": (rec(orderNo=3.5), "3.5 is not of type 'integer'"),
    "order-bool": (rec(orderNo=True), "true is not of type 'integer'"),
    "order-2^63": (rec(orderNo=2**63), "is greater than the maximum"),
    "order-2^63-1": (rec(orderNo=2**63 - 1), None),
    "date-naive": (rec(orderNo=502, lastUpdateDate="2024-05-01T12:00:00"), None),
    "date-offset": (rec(orderNo=503, lastUpdateDate="2024-05-01T12:00:00+05:45"), None),
    "date-only": (rec(lastUpdateDate="2024-05-01"), "date and time required"),
    "date-invalid": (rec(lastUpdateDate="2024-02-30T10:00:00Z"), "not an ISO 8601 date-time"),
    "date-words": (rec(creationDate="last tuesday"), "date and time required"),
    "date-number": (rec(creationDate=1714564800), "is not of type 'string'"),
    "year-0001": (rec(orderNo=504, creationDate="0001-01-01T00:00:00Z"), None),
    "year-0001-offset": (
        rec(creationDate="0001-01-01T00:00:00+01:00"),
        "outside the representable",
    ),
    "year-9999": (rec(orderNo=505, creationDate="9999-12-31T23:59:59.999Z"), None),
    # A last update that cannot be true yet (a typo'd year): refused alone (SPEC §8).
    "updated-in-9999": (rec(lastUpdateDate="9999-12-31T23:59:59.999Z"), "is in the future"),
    "dollar-and-dot-keys": (rec(orderNo=506, **{"$set": {"isSynced": False}, "a.b": 1}), None),
    "ambiguous": (rec(isDone=True), "ambiguous status"),
    "scalar": (b"true", "got a boolean"),
    "array-of-junk": (b"[1, null]", "is not of type 'object'"),
    "too-big": (rec(orderNo=507, summary="x" * 5000), "larger than MAX_FILE_BYTES"),
}


def test_bad_input_corpus(env: Env) -> None:
    env.inbound.mkdir(parents=True)
    for name, (data, _) in CORPUS.items():
        (env.inbound / f"{name}.json").write_bytes(data)
        aged(env.inbound / f"{name}.json")  # its writer long done: judged, not left for later
    os.mkfifo(env.inbound / "fifo.json")
    (env.inbound / "folder.json").mkdir()
    outside = env.root / "outside.json"
    outside.write_bytes(rec(orderNo=666))
    (env.inbound / "escape.json").symlink_to(outside)

    result = env.cli("inbound", MAX_FILE_BYTES="4096", timeout=120)
    assert result.code == 0, result.output
    assert "Traceback" not in result.output

    accepted = {name for name, (_, reason) in CORPUS.items() if reason is None}
    for name, (_, reason) in CORPUS.items():
        if reason is None:
            assert (env.processed / f"{name}.json").exists(), name
            continue
        assert (env.rejected / f"{name}.json").exists(), name
        report = read_json(env.rejected / f"{name}.json.error.json")
        reasons = " | ".join(p["reason"] for p in report["problems"])
        assert reason in reasons, (name, reasons)
    assert result.counts()["files"] == len(CORPUS)
    # one per rejected file, but array-of-junk holds two bad records
    assert result.counts()["rejected"] == len(CORPUS) - len(accepted) + 1
    # Odd entries are left alone, the file behind the escaping link is never read.
    for name in ("fifo.json", "folder.json", "escape.json"):
        assert os.path.lexists(env.inbound / name), name
    assert env.collection.count_documents({"number": 666}) == 0
    numbers = sorted(d["number"] for d in env.collection.find())
    assert numbers == sorted([501, 502, 503, 504, 505, 506, 2**63 - 1])
    stored = env.collection.find_one({"number": 506})
    assert stored is not None and "$set" not in stored and "a.b" not in stored
    assert stored["isSynced"] is True


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
# Mostly-valid records with one field replaced by anything: reaches the deeper layers.
mutated = st.builds(
    lambda field, value, base: {**base, field: value},
    st.sampled_from(list(client_record(1))),
    json_values,
    st.builds(client_record, st.integers(min_value=1, max_value=2**63 - 1)),
)
decoder = RecordDecoder(builtin_mapping())


@given(st.one_of(json_values, mutated, st.lists(mutated, max_size=3)))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_value_is_decoded_or_rejected_with_reasons(value: Any) -> None:
    decoded = decoder.decode(json.dumps(value).encode())
    if decoded.rejected:
        assert decoded.problems
        assert all(p.reason and p.path.startswith("$") for p in decoded.problems)
    expected = len(value) if isinstance(value, list) else 1
    assert len(decoded.records) + decoded.rejected == expected


@given(st.binary(max_size=300))
@settings(max_examples=400)
def test_any_bytes_are_decoded_or_rejected_with_reasons(raw: bytes) -> None:
    decoded = decoder.decode(raw)
    assert decoded.records or decoded.problems or raw.strip() in (b"[]",)


@pytest.mark.parametrize("size", [0, 1, 4096])
def test_size_limit_is_checked_before_reading(tmp_path: Path, size: int) -> None:
    from tracos_sync.connectors.client_erp.files import FolderSettings, FolderSource

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "big.json").write_bytes(b" " * (size + 10))
    source = FolderSource(
        FolderSettings(data_inbound_dir=folder, max_file_bytes=size + 9), builtin_mapping()
    )
    read = source._taker.read_unit("big.json", folder / "big.json", 100)
    assert [p.reason for p in read.problems] == [
        f"file is larger than MAX_FILE_BYTES={size + 9}; not read"
    ]
