"""Files that hold their records in an envelope (OData v2's ``{"d": {"results": [...]}}``, v4's
``{"value": [...]}``): where the mapping says (``records``), read by the one splitter (the codec)
whether the file is small (parsed whole) or large (streamed a part at a time); a file that looks
like an envelope the mapping does not declare says so."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import client_record
from tracos_sync.connectors.client_erp.codec import (
    NoRecords,
    NotRecords,
    ParseError,
    RecordDecoder,
    parse_json,
)
from tracos_sync.connectors.client_erp.envelopes import envelope_hint, shown_link
from tracos_sync.connectors.client_erp.files.connector import FolderConnector
from tracos_sync.connectors.client_erp.files.settings import FolderSettings
from tracos_sync.connectors.client_erp.files.source import FolderSource
from tracos_sync.connectors.client_erp.streaming import NotAnArray, OneObject, array_items
from tracos_sync.mapping import BUILTIN, RecordMapping, builtin_mapping, load_mapping
from tracos_sync.seed import BROKEN_INPUTS


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


# A file that says it is one page of a paged export (issue 22 follow-up, 1).


PAGED = [
    (
        "value",
        {
            "@odata.context": "$metadata#Orders",
            "value": [client_record(1), client_record(2)],
            "@odata.nextLink": "Orders?$skiptoken=2",
        },
    ),
    ("value", {"@odata.nextLink": "Orders?$skiptoken=2", "value": [client_record(1)]}),
    ("d.results", {"d": {"results": [client_record(1)], "__next": "Orders?$skiptoken=2"}}),
]


@pytest.mark.parametrize(("records", "document"), PAGED)
def test_a_page_of_a_paged_export_says_its_next_link_both_ways(records: str, document: Any) -> None:
    """Whole or streamed, the records are taken and the link beside them noted."""
    raw = orjson.dumps(document)
    decoded = RecordDecoder(enveloped(records)).decode(raw)
    assert decoded.records and decoded.problems == []
    assert decoded.next_link == "Orders?$skiptoken=2"
    stream = array_items(io.BytesIO(raw), tuple(records.split(".")))
    assert stream.next_link == "Orders?$skiptoken=2"
    assert len(list(stream)) == len(decoded.records)


@pytest.mark.parametrize(
    "document",
    [
        {"value": [client_record(1)]},
        {"value": [client_record(1)], "@odata.nextLink": None},
        # A link inside a record, or in an object off the way to the records, is not the page's.
        {"value": [client_record(1, **{"@odata.nextLink": "x"})]},
        {"other": {"@odata.nextLink": "x"}, "value": [client_record(1)]},
    ],
)
def test_only_the_envelopes_next_link_says_more_follow(document: Any) -> None:
    raw = orjson.dumps(document)
    assert RecordDecoder(enveloped("value")).decode(raw).next_link is None
    assert array_items(io.BytesIO(raw), ("value",)).next_link is None


def test_a_next_link_is_shown_without_its_query_secrets() -> None:
    link = "https://user:pa55word@erp.example/sap/Orders?sap-client=100&$skiptoken=20&api_key=S3CR3T&sig=abc#x"
    shown = shown_link(link)
    assert "$skiptoken=20" in shown and "erp.example/sap/Orders" in shown
    for secret in ("pa55word", "S3CR3T", "sig=abc", "100", "#x"):
        assert secret not in shown, shown
    assert shown_link("Orders?$skiptoken=2") == "Orders?$skiptoken=2"
    # A session in a path parameter (a hostile pass found ;jsessionid shown).
    shown = shown_link("https://erp.example/sap/Orders;jsessionid=SECRET4;v=2?$skip=100")
    assert "SECRET4" not in shown and "/sap/Orders;jsessionid=" in shown and "$skip=100" in shown


# The streamed path refuses what the whole-file path refuses (issue 22 follow-up, 2).


@pytest.mark.parametrize(
    ("records", "raw"),
    [
        ("value", b'{"value": [{"a": 1}], "value": [{"b": 2}]}'),
        ("value", b'{"@odata.context": "a", "@odata.context": "b", "value": [{"a": 1}]}'),
        ("value", b'{"value": [{"a": 1}], "x": 1, "x": 2}'),
        ("value", b'{"x": [{"k": 1, "k": 2}], "value": [{"a": 1}]}'),
        ("d.results", b'{"d": {"results": [{"a": 1}], "results": [{"b": 2}]}}'),
        ("d.results", b'{"d": {"results": [{"a": 1}]}, "d": {"results": []}}'),
    ],
)
def test_a_repeated_key_in_the_envelope_is_refused_before_any_record(
    records: str, raw: bytes
) -> None:
    with pytest.raises(ParseError, match="duplicate key") as whole:
        parse_json(raw)
    with pytest.raises(ParseError) as streamed:
        array_items(io.BytesIO(raw), tuple(records.split(".")))  # at once: no record yielded
    assert str(streamed.value) == str(whole.value)


envelope_keys = st.sampled_from(["value", "value", "@odata.count", "@odata.nextLink", "x"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(pairs=st.lists(st.tuples(envelope_keys, json_values), max_size=5))
def test_streamed_envelopes_are_read_as_whole_ones(pairs: list[tuple[str, Any]]) -> None:
    """Any envelope, its keys repeated or not: the streamed records and next link are the whole
    file's, or both refuse it."""
    text = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    raw = text.encode("utf-8", "surrogatepass")
    decoder = RecordDecoder(enveloped("value"))
    try:
        document = parse_json(raw)
        whole = decoder.records_of(document)
    except (ParseError, NotRecords):
        with pytest.raises((ParseError, NoRecords)):
            list(array_items(io.BytesIO(raw), ("value",)))
        return
    stream = array_items(io.BytesIO(raw), ("value",))
    assert list(stream) == whole
    assert stream.next_link == decoder.next_link_of(document)


# An envelope's annotations are not its keys (issue 22 follow-up, 4).


def test_an_odata_v4_envelope_with_its_count_is_still_said_as_one() -> None:
    document = {
        "@odata.context": "$metadata#Orders",
        "@odata.count": 7,
        "value": [client_record(n) for n in range(1, 8)],
        "@odata.nextLink": "Orders?$skip=7",
    }
    decoded = RecordDecoder(builtin_mapping()).decode(orjson.dumps(document))
    assert [(p.path, p.reason) for p in decoded.problems] == [
        ("$", "looks like an envelope: set records = 'value' in the mapping")
    ]


def test_a_record_with_many_fields_and_a_list_is_not_an_envelope() -> None:
    record = {"@odata.etag": "W/1", "a": 1, "b": 2, "c": 3, "items": [{"x": 1}]}
    assert envelope_hint(record) is None
    assert envelope_hint({"@odata.etag": "W/1", "a": 1, "items": [{"x": 1}]}) == "items"


# Seed writes every sample in the customer's envelope (issue 22 follow-up, 5).


async def test_seed_writes_the_broken_samples_in_the_envelope_too(tmp_path: Path) -> None:
    mapping = enveloped("d.results")
    connector = FolderConnector(FolderSettings(data_inbound_dir=tmp_path / "in"), mapping)
    assert await connector.add_samples([], BROKEN_INPUTS) == 2
    decoder = RecordDecoder(mapping)
    invalid = decoder.decode((tmp_path / "in" / "invalid-schema.json").read_bytes())
    assert invalid.rejected == 1 and not invalid.unparsable
    paths = {p.path for p in invalid.problems}
    assert "$" not in paths and "$.orderNo" in paths, invalid.problems  # the record's fault
    assert [p.record for p in invalid.problems] == [0] * len(invalid.problems)
    malformed = (tmp_path / "in" / "malformed.json").read_bytes()
    assert malformed.startswith(b'{"d":{"results":[{"orderNo": 900')
    assert decoder.decode(malformed).unparsable


# A large file in the wrong shape is refused from its first bytes (issue 22 follow-up, 3).


def test_a_records_list_of_objects_is_not_taken_for_an_envelope_from_the_first_bytes() -> None:
    record = orjson.dumps({**client_record(1), "tags": [{"a": 1}], "notes": "x" * 100_000})
    with pytest.raises(OneObject, match="one object this large"):
        array_items(io.BytesIO(record))
    counted = b'{"@odata.context": "c", "@odata.count": 2, "value": [{"orderNo": 1'
    with pytest.raises(NotAnArray, match="set records = 'value'"):
        array_items(io.BytesIO(counted))


async def test_one_large_record_is_read_whole_up_to_mongodbs_limit(tmp_path: Path) -> None:
    """A large object that does not start as an envelope is one record: read whole (its own
    size) while a record that size could be stored; beyond, refused unread."""
    inbound = tmp_path / "in"
    inbound.mkdir()
    (inbound / "one.json").write_bytes(orjson.dumps(client_record(1, summary="x" * 5_000_000)))
    (inbound / "huge.json").write_bytes(orjson.dumps(client_record(2, summary="x" * 17_000_000)))
    for name in ("one.json", "huge.json"):
        os.utime(inbound / name, (1, 1))
    async with folder_source(inbound, builtin_mapping()) as source:
        units = [u async for batch in source.batches(1000) for u in batch]
        await source.complete(units)
    taken = {u.name: ([r.number for r in u.records], [p.reason for p in u.problems]) for u in units}
    assert taken["one.json"] == ([1], [])
    assert taken["huge.json"][0] == []
    assert taken["huge.json"][1][0].startswith("one object this large is not read")


async def test_a_large_file_of_the_wrong_shape_is_refused_at_once(tmp_path: Path) -> None:
    """Its shape is in its first bytes, written first: no need to wait for its writer."""
    inbound = tmp_path / "in"
    inbound.mkdir()
    (inbound / "bare.json").write_bytes(orjson.dumps([client_record(n) for n in range(1, 25_001)]))
    async with folder_source(inbound, enveloped("value")) as source:
        units = [u async for batch in source.batches(10_000) for u in batch]
        await source.complete(units)
    assert [p.reason for u in units for p in u.problems] == [
        "no array of records at $.value (the mapping's records path)"
    ]
    assert (inbound / "rejected" / "bare.json").exists()
