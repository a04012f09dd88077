"""Files that hold their records in an envelope, through the CLI against the real server (issue 22
follow-up): a page of a paged export is taken with a warning, a large envelope is held to the
whole-file rules, and a large file in the wrong shape is refused in bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.builders import aged, client_record, read_json
from tests.conftest import Env
from tests.e2e.test_whole_files import peak_rss_mb

# The built-in client format, its records in an OData v4 envelope.
MAPPING = """
[mapping]
records = "value"
[mapping.fields]
number = "orderNo"
title = "summary"
created_at = "creationDate"
updated_at = "lastUpdateDate"
deleted = "isDeleted"
deleted_at = "deletedDate"
[mapping.status]
none = "in_progress"
optional = ["isActive"]
[mapping.status.flags]
isCanceled = "cancelled"
isDone = "completed"
isOnHold = "on_hold"
isPending = "pending"
isActive = "in_progress"
"""


def integrations(env: Env, *, envelope: bool = True) -> list[str]:
    """The CLI's options for one integration on the test's folders, its files in an envelope
    (``value``) or, ``envelope=False``, in the built-in format."""
    (env.root / "odata.toml").write_text(MAPPING)
    mapping = 'mapping = "odata.toml"\n' if envelope else ""
    (env.root / "integrations.toml").write_text(
        f'[[integration]]\nname = "odata"\ntracos = {{ collection = "{env.collection.name}" }}\n'
        f"{mapping}[integration.settings]\n"
        f'data_inbound_dir = "{env.inbound}"\ndata_outbound_dir = "{env.outbound}"\n'
    )
    return ["--integrations", str(env.root / "integrations.toml")]


def page(numbers: range, **envelope: Any) -> bytes:
    return orjson.dumps(
        {"@odata.context": "$metadata#Orders", "value": records(numbers), **envelope}
    )


def records(numbers: range) -> list[dict[str, Any]]:
    return [client_record(n) for n in numbers]


def large(path: Path, raw: bytes) -> None:
    """A file over the streaming threshold, whose writer is long done."""
    assert len(raw) > 4 * 1024 * 1024
    path.write_bytes(raw)
    aged(path)


def warnings_of(output: str, event: str) -> list[str]:
    return [line for line in output.splitlines() if event in line]


@pytest.mark.slow
def test_a_page_of_a_paged_export_is_taken_with_a_warning(env: Env) -> None:
    """Its records are valid: taken. The file says more follow: one warning per file, with the
    link (its query secrets masked), in a dry run too."""
    options = integrations(env)
    env.inbound.mkdir(parents=True)
    secret_link = "https://erp.example/odata/Orders?$skiptoken=3&sap-client=100&api_key=S3CR3T"
    (env.inbound / "small.json").write_bytes(page(range(1, 4), **{"@odata.nextLink": secret_link}))
    v4_last = page(range(10, 30_010), **{"@odata.nextLink": "Orders?$skiptoken=30010"})
    large(env.inbound / "big.json", v4_last)  # the link after the records, as v4 writes it
    (env.inbound / "whole.json").write_bytes(page(range(4, 5)))  # the export's last page

    for args in (("run", "--dry-run"), ("run",)):
        result = env.cli(*options, *args)
        assert result.code == 0, result.output
        said = warnings_of(result.output, "inbound.partial_export")
        assert len(said) == 2, said
        small = next(line for line in said if "file=small.json" in line)
        assert "$skiptoken=3" in small and "S3CR3T" not in small and "100" not in small
        assert "Orders?$skiptoken=30010" in next(line for line in said if "file=big.json" in line)
    assert (result.counts()["files"], result.counts()["inserted"]) == (3, 30_004), result.output
    assert {p.name for p in env.processed.iterdir()} == {"small.json", "big.json", "whole.json"}


def test_a_large_envelope_with_its_records_key_twice_is_refused_as_a_small_one(
    env: Env,
) -> None:
    """Which of the two arrays is the export? Neither is applied, whatever the file's size."""
    options = integrations(env)
    env.inbound.mkdir(parents=True)
    first, second = orjson.dumps(records(range(1, 25_001))), orjson.dumps(records(range(1, 3)))
    twice = b'{"value": ' + first + b', "value": ' + second + b"}"
    large(env.inbound / "big.json", twice)
    small = env.inbound / "small.json"
    small.write_bytes(b'{"value": ' + second + b', "value": []}')
    aged(small)  # it does not parse: taken once its writer is done
    result = env.cli(*options, "run")
    assert result.code == 0, result.output
    counts = result.counts()
    assert (counts["files"], counts["inserted"], counts["rejected"]) == (2, 0, 2), result.output
    for name in ("big.json", "small.json"):
        problems = read_json(env.rejected / f"{name}.error.json")["problems"]
        assert [p["reason"] for p in problems] == ["duplicate key 'value' in one object"]


def test_a_large_file_in_the_wrong_shape_is_refused_in_bounded_memory(env: Env) -> None:
    """A bare array sent to a mapping that reads an envelope, an envelope sent to one that does
    not: refused from the first bytes, never parsed whole (read whole: about 4 times the
    file's size)."""
    env.inbound.mkdir(parents=True)
    (env.inbound / "small.json").write_bytes(page(range(1, 2)))
    baseline, _ = peak_rss_mb(env, *integrations(env), "inbound", "--dry-run")
    bare = orjson.dumps(records(range(1, 90_001)))  # about 21 MB
    large(env.inbound / "bare.json", bare)
    peak, output = peak_rss_mb(env, *integrations(env), "inbound", "--dry-run")
    assert "files=2" in output and "rejected=1" in output, output
    assert "no array of records at $.value" in output, output
    assert peak - baseline < 25, f"{peak:.0f} MB against {baseline:.0f} MB for a small file"

    (env.inbound / "bare.json").unlink()
    large(env.inbound / "envelope.json", page(range(1, 90_001)))
    peak, output = peak_rss_mb(env, *integrations(env, envelope=False), "inbound", "--dry-run")
    assert "looks like an envelope: set records = 'value'" in output, output
    assert peak - baseline < 25, f"{peak:.0f} MB against {baseline:.0f} MB for a small file"
