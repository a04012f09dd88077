"""Trying a mapping on samples (``connectors/client_erp/trial.py``) and resolving a connector's
mapping from its configuration alone (``resolve.py``)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.connectors.client_erp.resolve import resolve_mapping
from tracos_sync.connectors.client_erp.trial import (
    ABSENT,
    Difference,
    differences,
    try_sample,
)
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import ConnectorConfig
from tracos_sync.pipeline import RunStats
from tracos_sync.refusals import MAX_KINDS, RefusalTally

EXAMPLE = Path(__file__).parents[2] / "examples" / "mappings" / "globex.toml"
TABLE = tomllib.loads(EXAMPLE.read_text())["mapping"]
NO_ZONE = {key: value for key, value in TABLE.items() if key != "timezone"}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(JSON)
def test_a_value_has_no_difference_from_itself(value: Any) -> None:
    assert list(differences(value, json.loads(json.dumps(value)))) == []


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=3), JSON, max_size=4), st.text(max_size=3), JSON, JSON)
def test_a_changed_or_added_field_is_the_one_difference(
    record: dict[str, Any], key: str, old: Any, new: Any
) -> None:
    given_ = {**record, key: old}
    written = {**record, key: new}
    found = list(differences(given_, written))
    if json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True):
        assert found == []
    else:
        assert found and all(d.path.startswith(f"$.{key}") for d in found)
    dropped = {k: v for k, v in given_.items() if k != key}
    assert list(differences(given_, dropped)) == [Difference(f"$.{key}", old, ABSENT)]
    assert list(differences(dropped, given_)) == [Difference(f"$.{key}", ABSENT, old)]


def test_numbers_and_booleans_differ_by_their_json_text() -> None:
    assert [d.path for d in differences({"a": 1, "b": True}, {"a": 1.0, "b": 1})] == [
        "$.a",
        "$.b",
    ]


def test_a_sample_that_is_no_record_is_one_refused_trial() -> None:
    decoder = RecordDecoder(resolve_mapping(ConnectorConfig(None, TABLE, None, "t")))
    (trial,) = try_sample(decoder, "s.json", b'"text"')
    assert trial.refused and trial.record is None
    assert "got a string" in trial.problems[0].reason
    (broken,) = try_sample(decoder, "s.json", b"{")
    assert broken.refused and "not valid JSON" in broken.problems[0].reason
    assert try_sample(decoder, "s.json", b"[]") == []


def test_the_zone_comes_from_the_connectors_settings_table() -> None:
    config = ConnectorConfig({"CLIENT_TIMEZONE": "Asia/Tokyo"}, NO_ZONE, None, "f: integration 'x'")
    mapping = resolve_mapping(config)
    record = {
        "id": 1,
        "status": "DONE",
        "details": {"title": "t"},
        "dates": {"created": "01/05/2024 09:00", "updated": "01/05/2024 09:00"},
    }
    assert mapping.decode(record).created_at.hour == 0  # 09:00 in Tokyo is midnight UTC
    # The mapping's own zone wins over the connector's.
    table = {**NO_ZONE, "timezone": "UTC"}
    utc = resolve_mapping(ConnectorConfig({"client_timezone": "Asia/Tokyo"}, table, None, "f"))
    assert utc.decode(record).created_at.hour == 9


def test_the_zone_comes_from_the_environment_without_a_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLIENT_TIMEZONE", "Asia/Tokyo")
    mapping = resolve_mapping(ConnectorConfig(None, NO_ZONE, None, "f"))
    record = {
        "id": 1,
        "status": "DONE",
        "details": {"title": "t"},
        "dates": {"created": "01/05/2024 09:00", "updated": "01/05/2024 09:00"},
    }
    assert mapping.decode(record).created_at.hour == 0


def test_an_unknown_zone_names_the_key_as_written() -> None:
    config = ConnectorConfig({"Client_TimeZone": "Mars/Olympus"}, NO_ZONE, None, "f: x")
    with pytest.raises(ConfigurationError, match=r"^f: x: settings\.Client_TimeZone: .*Mars"):
        resolve_mapping(config)


def test_all_refused_needs_a_record_the_mapping_refused_and_no_accepted_one() -> None:
    assert not RunStats().all_refused()
    assert RunStats(rejected=2, refused_by_mapping=2).all_refused()
    assert not RunStats(rejected=2, refused_by_mapping=2, stale=1).all_refused()
    assert not RunStats(rejected=2, refused_by_mapping=2, inserted=1).all_refused()
    # A truncated file (refused whole, not by the mapping) is the transport's problem.
    assert not RunStats(rejected=1).all_refused()
    assert RunStats(rejected=3, refused_by_mapping=2).all_refused()


def test_the_count_of_refusals_by_the_mapping_is_not_a_summary_count() -> None:
    stats = RunStats(rejected=2, refused_by_mapping=2)
    assert "refused_by_mapping" not in stats.as_fields()
    assert "refused_by_mapping" not in stats.counts()


def test_the_tally_names_the_most_common_problem_and_stays_bounded() -> None:
    tally = RefusalTally()
    assert tally.most_common() == ("", 0)
    tally.add([Problem("$.a", "bad", record=1), Problem("$.b", "worse", record=1)])
    tally.add([Problem("$.a", "bad", record=2)])
    assert tally.most_common() == ("$.a: bad", 2)
    tally.add(Problem(f"$.x{n}", "reason") for n in range(MAX_KINDS * 2))
    tally.add([Problem("$.a", "bad")])
    assert tally.most_common() == ("$.a: bad", 3)
    assert len(tally._counts) == MAX_KINDS


def test_the_tally_counts_a_kind_of_problem_whatever_its_value() -> None:
    tally = RefusalTally()
    tally.add([Problem("$.STATUS", '"20" is not one of 10, 20, 30', record=0)])
    for n in range(3):
        tally.add([Problem("$.AUFNR", f'"{n}" is not a number written like "000000000123"')])
        tally.add([Problem("$.ERDAT", f"not a date in the format '%Y%m%d': '2025{n}'")])
    tally.add([Problem("$.AUFNR", "7 is not of type 'string'")])  # another kind, same path
    assert tally.most_common() == ('$.AUFNR: "0" is not a number written like "000000000123"', 3)
