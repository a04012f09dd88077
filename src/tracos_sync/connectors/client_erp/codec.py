"""Bytes from the client -> domain work orders, with every problem located (record index + JSON
path). What a record must be is the mapping's (``tracos_sync.mapping``: its generated JSON Schema,
then its rules); this module parses the bytes, splits an array into records and locates problems.

Parsing uses the standard library's decoder rather than orjson: it is the one that can refuse
duplicate keys (``{"orderNo": 1, "orderNo": 2}`` would otherwise silently keep the last) and
name them, and at about 3 µs per record it is far from the bottleneck.

A large file is not parsed whole: ``streaming.array_items`` reads its records one at a time under
the same rules. Where a file's records are is the mapping's (``records_path``), for both ways of
reading it; a link to a next page beside them is noted (``next_link``: the file is one page of a
paged export)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping
from tracos_sync.mapping.paths import MISSING, json_path, read
from tracos_sync.mapping.reasons import reason as _reason

from .envelopes import envelope_hint, next_link

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


class NotRecords(ValueError):
    """A parsed input that holds no records (a string, a number); the message says what."""


class NoRecords(ValueError):
    """A document without the array of records where the mapping says they are."""


# Keys (a JSON path's names) at which a record is found: None for the document itself.
RecordPath = tuple[str, ...] | None


def no_records(records: tuple[str, ...]) -> str:
    return f"no array of records at {json_path(records)} (the mapping's records path)"


@dataclass(slots=True)
class Decoded:
    records: list[WorkOrder] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # record index of each of ``records``
    problems: list[Problem] = field(default_factory=list)
    rejected: int = 0
    unknown_fields: set[str] = field(default_factory=set)
    # The bytes are not a document we accept (as opposed to records that are refused): the file
    # may still be being written.
    unparsable: bool = False
    # The input says it is one page of a longer export: the link to the next one.
    next_link: str | None = None

    def unit(self, name: str, handle: object, *, ends_input: bool = True) -> InboundUnit:
        """What was decoded, as the unit of work the pipeline applies (``handle`` is the
        source's, to complete or release it)."""
        return InboundUnit(
            name,
            self.records,
            self.problems,
            self.rejected,
            handle,
            self.positions,
            ends_input=ends_input,
        )


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
            out.unparsable = True
            return out
        try:
            items = self.records_of(document)
        except NotRecords as exc:
            out.problems.append(Problem("$", str(exc)))
            out.rejected = 1
            return out
        out.next_link = self.next_link_of(document)
        return self.decode_items(enumerate(items), out)

    def records_of(self, document: Any) -> list[Any]:
        """The records a parsed input holds: the array at the mapping's records path (an
        envelope such as ``d.results``), else one object or each item of an array. Raises
        ``NotRecords`` saying what it holds instead, and naming an envelope the mapping does not
        declare. (Every reader of whole inputs splits them here: ``decode``, and
        ``tracos-sync mapping test``, which diffs each record.)"""
        records = self.mapping.records_path
        if records is not None:
            items = read(document, records) if isinstance(document, dict) else MISSING
            if not isinstance(items, list):
                raise NotRecords(no_records(records))
            return items
        if isinstance(document, dict):
            hint = envelope_hint(document) if self._looks_bare(document) else None
            if hint is not None:
                raise NotRecords(f"looks like an envelope: set records = {hint!r} in the mapping")
            return [document]
        if isinstance(document, list):
            return document
        raise NotRecords(f"expected a work order object or an array of them, got {_kind(document)}")

    def next_link_of(self, document: Any) -> str | None:
        """The link to the next page beside a parsed input's records (OData's
        ``@odata.nextLink``, ``__next``): the input is one page of a paged export."""
        records = self.mapping.records_path
        return None if records is None else next_link(document, records)

    def _looks_bare(self, document: dict[str, Any]) -> bool:
        """A document without the record's number (what no record of this mapping lacks)."""
        number = self.mapping.number_path.removeprefix("$.").split(".")
        return read(document, tuple(number)) is MISSING

    def decode_items(self, items: Iterable[tuple[int, Any]], out: Decoded | None = None) -> Decoded:
        """Decode parsed records, each with its record index in the input."""
        out = out if out is not None else Decoded()
        for index, item in items:
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
