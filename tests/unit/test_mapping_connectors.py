"""The connectors read and write a customer's own shape through its mapping: decoding bytes, the
folder sink's files and its "already newer" check, and what the HTTP connector saw the ERP hold."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.connectors.client_erp.files.settings import FolderSettings
from tracos_sync.connectors.client_erp.files.sink import FolderSink, holds_newer_than
from tracos_sync.connectors.declarative_http.versions import ErpVersions
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.mapping import load_mapping

EXAMPLE = Path(__file__).parents[2] / "examples" / "mappings" / "globex.toml"
MAPPING = load_mapping(tomllib.loads(EXAMPLE.read_text())["mapping"], where=str(EXAMPLE))
ORDER = WorkOrder(
    7,
    Status.ON_HOLD,
    "Belt",
    datetime(2024, 5, 1, 10, tzinfo=UTC),
    datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
)


def test_decoder_locates_problems_in_the_clients_paths() -> None:
    good = MAPPING.encode(ORDER)
    bad = {**good, "dates": {**good["dates"], "updated": "2024-05-01"}}
    decoded = RecordDecoder(MAPPING).decode(orjson.dumps([good, bad, {**good, "x": 1}]))
    assert [r.number for r in decoded.records] == [7, 7]
    assert [(p.record, p.path) for p in decoded.problems] == [(1, "$.dates.updated")]
    assert decoded.unknown_fields == {"x"}


async def test_folder_sink_writes_the_mappings_shape(tmp_path: Path) -> None:
    sink = FolderSink(FolderSettings(data_outbound_dir=tmp_path), MAPPING)
    await sink.prepare()
    try:
        delivery = await sink.deliver([ORDER])
    finally:
        await sink.close()
    assert delivery.delivered == [7]
    written = orjson.loads((tmp_path / "7.json").read_bytes())
    assert written["status"] == "ON_HOLD" and written["dates"]["updated"] == "01/05/2024 09:30"
    # The file's own last update is read through the mapping.
    newer = orjson.dumps({**written, "dates": {**written["dates"], "updated": "01/05/2024 10:00"}})
    assert holds_newer_than(ORDER.updated_at, MAPPING)(newer) is True
    assert holds_newer_than(ORDER.updated_at, MAPPING)(orjson.dumps(written)) is False
    assert holds_newer_than(ORDER.updated_at, MAPPING)(b"not json") is False


def test_erp_versions_read_a_refused_records_key_through_the_mapping() -> None:
    erp = ErpVersions(MAPPING)
    raw = {**MAPPING.encode(ORDER), "status": "BROKEN"}
    assert erp.saw_raw(raw) == (ORDER.updated_at, 7)
    assert erp.holds_newer(7, datetime(2024, 5, 1, 12, tzinfo=UTC))
    assert erp.saw_raw({"orderNo": 7}) is None


async def test_folder_sink_writes_in_the_envelope_when_the_mapping_says(tmp_path: Path) -> None:
    # A customer whose files hold their records in an envelope may want ours the same way.
    description = tomllib.loads(EXAMPLE.read_text())["mapping"]
    enveloped = load_mapping(
        {**description, "records": "d.results", "envelope_outbound": True}, where="acme"
    )
    sink = FolderSink(FolderSettings(data_outbound_dir=tmp_path), enveloped)
    await sink.prepare()
    try:
        delivery = await sink.deliver([ORDER])
    finally:
        await sink.close()
    assert delivery.delivered == [7]
    raw = (tmp_path / "7.json").read_bytes()
    written = orjson.loads(raw)
    assert list(written) == ["d"] and len(written["d"]["results"]) == 1
    assert written["d"]["results"][0] == MAPPING.encode(ORDER)
    # Read back as the customer's own files are, and its last update seen through the envelope.
    assert [r.number for r in RecordDecoder(enveloped).decode(raw).records] == [7]
    assert holds_newer_than(ORDER.updated_at, enveloped)(raw) is False
    results = [{**MAPPING.encode(ORDER), "dates": {**written["d"]["results"][0]["dates"]}}]
    results[0]["dates"]["updated"] = "01/05/2024 10:00"
    newer = orjson.dumps({"d": {"results": results}})
    assert holds_newer_than(ORDER.updated_at, enveloped)(newer) is True


def test_writing_in_an_envelope_needs_one() -> None:
    description = tomllib.loads(EXAMPLE.read_text())["mapping"]
    with pytest.raises(ConfigurationError, match="envelope_outbound: needs records"):
        load_mapping({**description, "envelope_outbound": True}, where="acme")


@pytest.mark.parametrize("envelope_outbound", [True, False])
def test_a_newer_file_in_the_other_shape_is_still_seen_as_newer(envelope_outbound: bool) -> None:
    # Switching envelope_outbound leaves files of the other shape in the outbound folder: each
    # must still be read, or a newer client copy would be overwritten by an older TracOS one.
    description = tomllib.loads(EXAMPLE.read_text())["mapping"]
    mapping = load_mapping(
        {**description, "records": "d.results", "envelope_outbound": envelope_outbound},
        where="acme",
    )
    record = MAPPING.encode(ORDER)
    newer = {**record, "dates": {**record["dates"], "updated": "01/05/2024 10:00"}}
    other_shape = newer if envelope_outbound else {"d": {"results": [newer]}}
    assert holds_newer_than(ORDER.updated_at, mapping)(orjson.dumps(other_shape)) is True
    same_age = record if envelope_outbound else {"d": {"results": [record]}}
    assert holds_newer_than(ORDER.updated_at, mapping)(orjson.dumps(same_age)) is False
