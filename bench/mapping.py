"""Micro-benchmark of the record mappings (not a test): decode (JSON parse included) and encode
(``orjson.dumps`` included) in records per second, for the built-in mapping, for the code it
replaced (the JSON Schema file + strict pydantic model + ``translate``, still in the tree as the
built-in mapping's test oracle), for the nested example mapping and for the SAP-style one
(formatted key, integer codes, an "X" flag, dates and times in two fields, an OData date).
Best of ``--repeat`` passes.

    .venv/bin/python bench/mapping.py [--n 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import fastjsonschema
import jsonschema
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from tracos_sync.connectors.client_erp.codec import RecordDecoder  # noqa: E402
from tracos_sync.connectors.client_erp.translate import to_client, to_tracos  # noqa: E402
from tracos_sync.connectors.client_erp.wire import ClientWorkOrder, json_schema  # noqa: E402
from tracos_sync.domain.errors import RecordRejected  # noqa: E402
from tracos_sync.domain.model import Problem, Status, WorkOrder  # noqa: E402
from tracos_sync.domain.text import text_problem  # noqa: E402
from tracos_sync.mapping import RecordMapping, builtin_mapping, load_mapping  # noqa: E402

EXAMPLE = ROOT / "examples" / "mappings" / "globex.toml"
SAP = ROOT / "examples" / "mappings" / "sap.toml"


def orders(n: int) -> list[WorkOrder]:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    statuses = list(Status)
    return [
        WorkOrder(
            number=i,
            status=statuses[i % len(statuses)],
            title=f"Order {i}",
            created_at=start + timedelta(minutes=i),
            updated_at=start + timedelta(minutes=i, hours=1),
            deleted=i % 7 == 0,
        )
        for i in range(1, n + 1)
    ]


class LegacyRecords:
    """What read a record before mappings (the schema file, the strict model, ``translate``),
    behind the mapping's ``decode`` so that both go through the same ``RecordDecoder``."""

    records_path = None  # a file is a record or an array of them, as before envelopes
    number_path = "$.orderNo"

    def __init__(self) -> None:
        schema = json_schema()
        self._check = fastjsonschema.compile(schema)
        self._full = jsonschema.Draft7Validator(schema)

    def decode(self, item: Any, unknown_fields: set[str] | None = None) -> WorkOrder:
        try:
            self._check(item)
        except fastjsonschema.JsonSchemaValueException:
            problems = [Problem("$", e.message) for e in self._full.iter_errors(item)]
            raise RecordRejected(problems) from None
        record = ClientWorkOrder.model_validate(item)
        problem = text_problem(record.summary)
        if problem is not None:
            raise RecordRejected([Problem("$.summary", problem)])
        if record.model_extra and unknown_fields is not None:
            unknown_fields.update(record.model_extra)
        return to_tracos(record, UTC)


def best_rates(n: int, repeat: int, works: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Records per CPU second of each piece of work, best of ``repeat``; the pieces take turns
    so that each sees the same load (the build machines are shared)."""
    best = dict.fromkeys(works, float("inf"))
    for _ in range(repeat):
        for label, work in works.items():
            start = time.process_time()
            work()
            best[label] = min(best[label], time.process_time() - start)
    return {label: n / seconds for label, seconds in best.items()}


Codec = tuple[Callable[[bytes], Any], Callable[[WorkOrder], Any]]


def measure(codecs: dict[str, Codec], sample: list[WorkOrder], repeat: int) -> None:
    works: dict[str, Callable[[], object]] = {}
    for label, (decode, encode) in codecs.items():
        payloads = [orjson.dumps(encode(order)) for order in sample]
        works[f"{label}|decode"] = lambda d=decode, p=payloads: [d(raw) for raw in p]
        works[f"{label}|encode"] = lambda e=encode: [orjson.dumps(e(o)) for o in sample]
    rates = best_rates(len(sample), repeat, works)
    for label in codecs:
        print(
            f"{label:<40} decode {rates[label + '|decode']:>9,.0f} records/s"
            f"   encode {rates[label + '|encode']:>9,.0f} records/s"
        )


def through(mapping: RecordMapping) -> Callable[[bytes], Any]:
    decoder = RecordDecoder(mapping)

    def decode(raw: bytes) -> Any:
        decoded = decoder.decode(raw)
        assert decoded.records, decoded.problems
        return decoded

    return decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sample = orders(args.n)
    builtin = builtin_mapping()
    codecs: dict[str, Codec] = {
        "before (schema + pydantic + translate)": (
            through(cast(RecordMapping, LegacyRecords())),
            to_client,
        ),
        "built-in mapping": (through(builtin), builtin.encode),
    }
    if EXAMPLE.exists():
        example = load_mapping(tomllib.loads(EXAMPLE.read_text())["mapping"], where=str(EXAMPLE))
        codecs["example mapping (globex.toml)"] = (through(example), example.encode)
    if SAP.exists():
        # Per record: the envelope is split once a file, so records are fed one at a time.
        description = tomllib.loads(SAP.read_text())["mapping"]
        description.pop("records")
        sap = load_mapping(description, where=str(SAP))
        codecs["SAP-style mapping (sap.toml)"] = (through(sap), sap.encode)
    measure(codecs, sample, args.repeat)


if __name__ == "__main__":
    main()
