"""Bytes from the client -> domain work orders, with every problem located (record index + JSON
path). What a record must be is the mapping's (``tracos_sync.mapping``: its generated JSON Schema,
then its rules); this module parses the bytes, splits an array into records and locates problems.

Parsing uses the standard library's decoder rather than orjson: it is the one that can refuse
duplicate keys (``{"orderNo": 1, "orderNo": 2}`` would otherwise silently keep the last) and
name them, and at about 3 µs per record it is far from the bottleneck.

A large file is not parsed whole: ``array_items`` streams the records of a top-level array (or of
the array at the mapping's record path, ``d.results``) one at a time (ijson, its C backend), under
the same rules: duplicate keys refused, no NaN/Infinity, UTF-8 with a tolerated byte-order mark.
Where a file's records are is the mapping's (``records_path``), for both ways of reading it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import ijson
from ijson.backends import python as ijson_python

from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.mapping import RecordMapping
from tracos_sync.mapping.paths import MISSING, json_path, read
from tracos_sync.mapping.reasons import reason as _reason

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


# Read this much at a time when scanning or streaming a large file.
STREAM_BLOCK_BYTES = 1 << 20
_WHITESPACE = b" \t\r\n"
# What the C backend does not take as the standard library does: an escaped UTF-16 surrogate (a
# lone one would be silently turned into "?") and an integer beyond 64 bits (refused). A file
# holding either (or a long run of digits in a string: a harmless false alarm) is streamed by
# ijson's pure-Python backend, slower but exact.
_NEEDS_EXACT = re.compile(rb"\\u[dD][89a-fA-F]|[0-9]{19}")
_EXACT_OVERLAP = 19


class NotAnArray(ValueError):
    """The input's top-level value is not an array (or, for records in an envelope, not an
    object): it is parsed whole instead."""


class NoRecords(ValueError):
    """A document without the array of records where the mapping says they are."""


# Keys (a JSON path's names) at which a record is found: None for the document itself.
RecordPath = tuple[str, ...] | None


def _unique_keys_type() -> tuple[type[dict[str, Any]], list[str]]:
    """A dict type for ijson's ``map_type`` that notes a repeated key (raising inside the C
    backend's call would surface as a ``SystemError``), and the list it notes them in."""
    repeated: list[str] = []

    class UniqueKeys(dict[str, Any]):
        __slots__ = ()

        def __setitem__(self, key: str, value: Any) -> None:
            if key in self:
                repeated.append(key)
            super().__setitem__(key, value)

    return UniqueKeys, repeated


def starts_array(handle: IO[bytes], records: RecordPath = None) -> bool:
    """Whether the document in the seekable ``handle`` can hold streamable records: an array,
    or an object when they are at a record path. Leaves ``handle`` at its start."""
    try:
        return _skip_bom_and_space(handle) == (b"[" if records is None else b"{")
    finally:
        handle.seek(0)


def _skip_bom_and_space(handle: IO[bytes]) -> bytes:
    """Position ``handle`` after a leading byte-order mark; the first byte of the document
    (after whitespace), or b"" when there is none."""
    start = 0
    head = handle.read(len(UTF8_BOM))
    if head == UTF8_BOM:
        start = len(UTF8_BOM)
    handle.seek(start)
    while block := handle.read(4096):
        stripped = block.lstrip(_WHITESPACE)
        if stripped:
            return stripped[:1]
    return b""


def _needs_exact_backend(handle: IO[bytes]) -> bool:
    tail = b""
    while block := handle.read(STREAM_BLOCK_BYTES):
        if _NEEDS_EXACT.search(tail + block):
            return True
        tail = block[-_EXACT_OVERLAP:]
    return False


def array_items(handle: IO[bytes], records: RecordPath = None) -> Iterator[Any]:
    """The items of the JSON array in the seekable binary ``handle`` (the document, or the array
    at ``records`` in it), one at a time, under ``parse_json``'s rules. Raises ``NotAnArray`` at
    once when the document is not an array (not an object, with ``records``); the iterator
    raises ``ParseError`` where the bytes stop being an acceptable document (the items before it
    have been yielded), ``NoRecords`` at the end of a document without the array at
    ``records``."""
    first = _skip_bom_and_space(handle)
    if first != (b"[" if records is None else b"{"):
        raise NotAnArray(first)
    handle.seek(0)
    start = len(UTF8_BOM) if handle.read(len(UTF8_BOM)) == UTF8_BOM else 0
    handle.seek(0)
    exact = _needs_exact_backend(handle)
    handle.seek(start)
    return _items(handle, exact, records, start)


def _items(handle: IO[bytes], exact: bool, records: RecordPath, start: int) -> Iterator[Any]:
    map_type, repeated = _unique_keys_type()
    backend = ijson_python if exact else ijson
    # ijson's prefix: names joined by dots (a client path's names hold none), "item" per array.
    prefix = "item" if records is None else ".".join([*records, "item"])
    items = backend.items(handle, prefix, map_type=map_type, use_float=True, buf_size=1 << 16)
    index = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            if index == 0 and records is not None and not _holds_array(handle, records, start):
                raise NoRecords(_no_records(records)) from None
            return
        except UnicodeDecodeError as exc:
            raise ParseError(f"not UTF-8 text ({exc.reason} after {index} records)") from None
        except (ijson.JSONError, ValueError) as exc:  # ValueError: the pure-Python backend's
            where = f"after {index} records"  # string decoder (a control byte)
            raise ParseError(f"not valid JSON: {_first_line(exc)} ({where})") from None
        if repeated:
            raise ParseError(f"duplicate key {repeated[0]!r:.60} in one object (record {index})")
        yield item
        index += 1


def _holds_array(handle: IO[bytes], records: tuple[str, ...], start: int) -> bool:
    """Whether the (parsed, valid) document in ``handle`` has an array at ``records``: read
    again only when no record was found there, to tell an empty array from none."""
    handle.seek(start)
    wanted = ".".join(records)
    return any(
        prefix == wanted and event == "start_array" for prefix, event, _ in ijson.parse(handle)
    )


def _no_records(records: tuple[str, ...]) -> str:
    return f"no array of records at {json_path(records)} (the mapping's records path)"


def envelope_hint(document: dict[str, Any]) -> str | None:
    """The path of an array of objects in ``document`` (``d.results``, ``value``), when the
    document looks like an envelope of records rather than a record: to say so, instead of
    listing every field the "record" lacks. An envelope has few keys of its own (OData v4's
    ``@odata.context``, ``value``, ``@odata.nextLink``)."""
    if len(document) > 3:
        return None
    for key, value in document.items():
        if isinstance(value, dict):
            for inner, nested in value.items():
                if _objects(nested):
                    return f"{key}.{inner}"
        elif _objects(value):
            return key
    return None


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _first_line(exc: Exception) -> str:
    """The first line of ijson's message (the others draw the place in the text)."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):  # the C backend's complaint about UTF-8 comes as bytes
        message = message.decode("utf-8", "replace")
    lines = str(message).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


class NotRecords(ValueError):
    """A parsed input that holds no records (a string, a number); the message says what."""


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
                raise NotRecords(_no_records(records))
            return items
        if isinstance(document, dict):
            hint = envelope_hint(document) if self._looks_bare(document) else None
            if hint is not None:
                raise NotRecords(f"looks like an envelope: set records = {hint!r} in the mapping")
            return [document]
        if isinstance(document, list):
            return document
        raise NotRecords(f"expected a work order object or an array of them, got {_kind(document)}")

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
