"""Bytes from the client -> domain work orders, with every problem located (record index + JSON
path). What a record must be is the mapping's (``tracos_sync.mapping``: its generated JSON Schema,
then its rules); this module parses the bytes, splits an array into records and locates problems.

Parsing uses the standard library's decoder rather than orjson: it is the one that can refuse
duplicate keys (``{"orderNo": 1, "orderNo": 2}`` would otherwise silently keep the last) and
name them, and at about 3 µs per record it is far from the bottleneck."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.mapping import RecordMapping
from tracos_sync.mapping.record_mapping import reason as _reason

UTF8_BOM = b"\xef\xbb\xbf"


class ParseError(ValueError):
    """The input is not a JSON document we accept; the message says why."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ParseError(f"duplicate key {key!r:.60} in one object")
            seen.add(key)
    return obj


def _no_constants(name: str) -> Any:
    raise ParseError(f"{name} is not a JSON number")


_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants)


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 (a leading byte-order mark is tolerated), no duplicate keys, no
    NaN/Infinity. Raises ``ParseError`` with a readable reason."""
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    if not raw.strip():
        raise ParseError("file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    try:
        return _JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ParseError("not valid JSON: nested too deeply") from None


@dataclass(slots=True)
class Decoded:
    records: list[WorkOrder] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # record index of each of ``records``
    problems: list[Problem] = field(default_factory=list)
    rejected: int = 0
    unknown_fields: set[str] = field(default_factory=set)


class RecordDecoder:
    """Built once per mapping, then used for every input."""

    def __init__(self, mapping: RecordMapping) -> None:
        self.mapping = mapping

    def decode(self, raw: bytes) -> Decoded:
        """Decode one input holding a work order object or an array of them."""
        out = Decoded()
        try:
            document = parse_json(raw)
        except ParseError as exc:
            out.problems.append(Problem("$", _reason(str(exc))))
            out.rejected = 1
            return out
        if isinstance(document, dict):
            items: list[Any] = [document]
        elif isinstance(document, list):
            items = document
        else:
            reason = f"expected a work order object or an array of them, got {_kind(document)}"
            out.problems.append(Problem("$", reason))
            out.rejected = 1
            return out
        for index, item in enumerate(items):
            try:
                out.records.append(self.decode_record(item, out.unknown_fields))
                out.positions.append(index)
            except RecordRejected as exc:
                out.rejected += 1
                out.problems.extend(Problem(p.path, p.reason, record=index) for p in exc.problems)
        return out

    def decode_record(self, item: Any, unknown_fields: set[str] | None = None) -> WorkOrder:
        """One record, through the mapping. Raises ``RecordRejected``."""
        return self.mapping.decode(item, unknown_fields)


def _kind(value: Any) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
