"""Files that hold their records in an envelope (OData v2's ``{"d": {"results": [...]}}``, v4's
``{"value": [...]}``): where the mapping says (``records``), read by the one splitter (the codec)
whether the file is small (parsed whole) or large (streamed a part at a time); a file that looks
like an envelope the mapping does not declare says so."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.builders import client_record
from tracos_sync.connectors.client_erp.codec import (
    NoRecords,
    NotAnArray,
    RecordDecoder,
    array_items,
)
from tracos_sync.connectors.client_erp.files.settings import FolderSettings
from tracos_sync.connectors.client_erp.files.source import FolderSource
from tracos_sync.mapping import BUILTIN, RecordMapping, builtin_mapping, load_mapping


def enveloped(records: str) -> RecordMapping:
    return load_mapping({**BUILTIN, "records": records}, where="test")


@pytest.mark.parametrize(
    ("records", "document"),
    [
        ("d.results", {"d": {"results": [client_record(1), client_record(2)], "__next": "x"}}),
        ("value", {"@odata.context": "$metadata", "value": [client_record(1), client_record(2)]}),
    ],
)
def test_records_are_read_where_the_mapping_says(records: str, document: Any) -> None:
    decoded = RecordDecoder(enveloped(records)).decode(orjson.dumps(document))
    assert [r.number for r in decoded.records] == [1, 2]
    assert decoded.problems == []


def test_a_bad_record_in_an_envelope_costs_only_itself() -> None:
    bad = {**client_record(2), "orderNo": "2"}
    raw = orjson.dumps({"d": {"results": [client_record(1), bad, client_record(3)]}})
    decoded = RecordDecoder(enveloped("d.results")).decode(raw)
    assert [r.number for r in decoded.records] == [1, 3]
    assert [(p.record, p.path) for p in decoded.problems] == [(1, "$.orderNo")]


@pytest.mark.parametrize(
    "document", [client_record(1), [client_record(1)], {"d": {"result": []}}, {"d": []}]
)
def test_a_file_without_the_declared_envelope_is_refused_saying_where_it_looked(
    document: Any,
) -> None:
    decoded = RecordDecoder(enveloped("d.results")).decode(orjson.dumps(document))
    assert decoded.records == []
    assert [(p.path, p.reason) for p in decoded.problems] == [
        ("$", "no array of records at $.d.results (the mapping's records path)")
    ]
    assert decoded.rejected == 1 and not decoded.unparsable


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"d": {"results": [client_record(1)]}}, "d.results"),
        ({"@odata.context": "$metadata", "value": [client_record(1)]}, "value"),
        ({"value": []}, "value"),
    ],
)
def test_an_envelope_the_mapping_does_not_declare_is_said_as_one(document: Any, path: str) -> None:
    decoded = RecordDecoder(builtin_mapping()).decode(orjson.dumps(document))
    assert [(p.path, p.reason) for p in decoded.problems] == [
        ("$", f"looks like an envelope: set records = '{path}' in the mapping")
    ]


def test_a_record_with_a_list_is_not_taken_for_an_envelope() -> None:
    item = {**client_record(1), "tags": [{"a": 1}]}
    assert RecordDecoder(builtin_mapping()).decode(orjson.dumps(item)).records


def test_the_streaming_splitter_reads_the_records_at_a_path() -> None:
    raw = orjson.dumps({"d": {"__count": "2", "results": [{"a": 1}, {"b": 2}]}})
    assert list(array_items(io.BytesIO(raw), ("d", "results"))) == [{"a": 1}, {"b": 2}]
    assert list(array_items(io.BytesIO(b'{"d": {"results": []}}'), ("d", "results"))) == []
    with pytest.raises(NoRecords, match=r"no array of records at \$\.d\.results"):
        list(array_items(io.BytesIO(b'{"d": {"other": [{"a": 1}]}}'), ("d", "results")))
    with pytest.raises(NotAnArray):
        array_items(io.BytesIO(b"[]"), ("d", "results"))


@contextlib.asynccontextmanager
async def folder_source(folder: Path, mapping: RecordMapping) -> AsyncIterator[FolderSource]:
    source = FolderSource(FolderSettings(data_inbound_dir=folder), mapping)
    await source.prepare()
    try:
        yield source
    finally:
        await source.close()


async def test_a_large_envelope_is_streamed_in_parts(tmp_path: Path) -> None:
    """Memory stays bounded: a large file in an envelope comes a batch at a time, as a large
    array does, not parsed whole."""
    inbound = tmp_path / "in"
    inbound.mkdir()
    records = [client_record(n) for n in range(1, 25_001)]
    (inbound / "big.json").write_bytes(orjson.dumps({"d": {"results": records}}))
    assert (inbound / "big.json").stat().st_size > 4 * 1024 * 1024
    os.utime(inbound / "big.json", (1, 1))  # its writer is long done
    async with folder_source(inbound, enveloped("d.results")) as source:
        sizes = []
        async for batch in source.batches(10_000):
            sizes.append((len(batch[0].records), batch[0].ends_input))
            await source.complete(batch)
    assert sizes == [(10_000, False), (10_000, False), (5_000, True)]
    assert (inbound / "processed" / "big.json").exists()


async def test_a_large_file_without_the_declared_envelope_is_rejected(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    inbound.mkdir()
    records = [client_record(n) for n in range(1, 25_001)]
    (inbound / "big.json").write_bytes(orjson.dumps({"d": {"items": records}}))
    os.utime(inbound / "big.json", (1, 1))
    async with folder_source(inbound, enveloped("d.results")) as source:
        units = [u async for batch in source.batches(10_000) for u in batch]
        await source.complete(units)
    assert [p.reason for u in units for p in u.problems] == [
        "no array of records at $.d.results (the mapping's records path)"
    ]
    assert (inbound / "rejected" / "big.json").exists()


def test_a_record_goes_into_a_file_in_the_customers_envelope() -> None:
    assert enveloped("d.results").enclose([{"a": 1}]) == {"d": {"results": [{"a": 1}]}}
    assert builtin_mapping().enclose([{"a": 1}]) == {"a": 1}
