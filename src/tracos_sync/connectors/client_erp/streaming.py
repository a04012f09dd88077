"""A large file's records, one at a time (ijson, its C backend), under the whole-file parser's
rules (``codec.parse_json``): duplicate keys refused, in the records and in the envelope's own
objects; no NaN/Infinity; UTF-8 with a tolerated byte-order mark. The records of a top-level
array, or of the array at the mapping's record path (``d.results``). A document of another shape
is refused from its first bytes, never built: memory stays bounded whatever the file holds."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson
from ijson.backends import python as ijson_python

from .codec import UTF8_BOM, NoRecords, NotRecords, ParseError, RecordPath, no_records
from .envelopes import HINT_HEAD_BYTES, hint_from_head, scan_envelope

# Read this much at a time when scanning or streaming a large file.
STREAM_BLOCK_BYTES = 1 << 20
_WHITESPACE = b" \t\r\n"
# What the C backend does not take as the standard library does: an escaped UTF-16 surrogate (a
# lone one would be silently turned into "?") and an integer beyond 64 bits (refused). A file
# holding either (or a long run of digits in a string: a harmless false alarm) is streamed by
# ijson's pure-Python backend, slower but exact.
_NEEDS_EXACT = re.compile(rb"\\u[dD][89a-fA-F]|[0-9]{19}")
_EXACT_OVERLAP = 19


class NotAnArray(NotRecords):
    """A large document whose shape cannot hold records where the mapping says (an array for
    records in an envelope, an object for a mapping without one, a string, a number): said from
    its first bytes, without reading it whole. The message says what it is."""


class OneObject(NotAnArray):
    """A large object, for a mapping without records, whose start does not look like an
    envelope: maybe one large record, which only its reader can weigh (it is read whole)."""


# What ijson's events raise where the bytes stop being JSON (ValueError: the pure-Python
# backend's string decoder, UnicodeDecodeError among them).
_STREAM_ERRORS = (ijson.JSONError, ValueError)
# The first byte of a JSON value that is not an object or array, and what it is.
_SCALARS = {b'"': "a string", b"t": "a boolean", b"f": "a boolean", b"n": "null"}
_SCALARS |= {bytes([c]): "a number" for c in b"-0123456789"}


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


@dataclass(slots=True)
class RecordStream:
    """The records of a large document, one at a time (``for item in stream``), and what its
    envelope said before the first was read."""

    items: Iterator[Any]
    next_link: str | None = None  # the link to the next page of a paged export

    def __iter__(self) -> Iterator[Any]:
        return self.items


def array_items(handle: IO[bytes], records: RecordPath = None) -> RecordStream:
    """The items of the JSON array in the seekable binary ``handle`` (the document, or the array
    at ``records`` in it), one at a time, under ``parse_json``'s rules. Raises at once, before
    any item: ``NotAnArray`` when the document's first bytes say it cannot hold them there;
    ``ParseError`` for an empty document, or a repeated key in the envelope's objects;
    ``NoRecords`` for a document without the array at ``records``. The iterator raises
    ``ParseError`` where the bytes stop being an acceptable document (the items before it have
    been yielded)."""
    start = check_shape(handle, records)
    exact = _needs_exact_backend(handle)
    backend = ijson_python if exact else ijson
    link = None
    if records is not None:
        handle.seek(start)
        events = backend.parse(handle, use_float=True, buf_size=1 << 16)
        scan = scan_envelope(events, records, _STREAM_ERRORS)
        if scan.duplicate is not None:
            raise ParseError(f"duplicate key {scan.duplicate!r:.60} in one object")
        if scan.complete and not scan.holds_records:
            raise NoRecords(no_records(records))
        link = scan.next_link
    handle.seek(start)
    return RecordStream(_items(handle, exact, records), link)


def check_shape(handle: IO[bytes], records: RecordPath = None) -> int:
    """Raise what ``array_items`` raises from the document's first bytes alone (``NotAnArray``,
    ``OneObject``, ``ParseError``), without reading the rest; else the offset of the document
    after its byte-order mark. Leaves ``handle`` at its start."""
    first = _skip_bom_and_space(handle)
    handle.seek(0)
    start = len(UTF8_BOM) if handle.read(len(UTF8_BOM)) == UTF8_BOM else 0
    try:
        _refuse_shape(handle, first, records, start)
    finally:
        handle.seek(0)
    return start


def _refuse_shape(handle: IO[bytes], first: bytes, records: RecordPath, start: int) -> None:
    """Refuse a document that cannot hold records where the mapping says, from its first
    byte (and, for an object that seems to be an undeclared envelope, its first kilobytes)."""
    if first == (b"[" if records is None else b"{"):
        return
    if not first:
        raise ParseError("file is empty")
    if first == b"[":
        assert records is not None
        raise NotAnArray(no_records(records))
    if first == b"{":
        handle.seek(start)
        head = io.BytesIO(handle.read(HINT_HEAD_BYTES))
        hint = hint_from_head(ijson.parse(head, use_float=True), _STREAM_ERRORS)
        if hint is not None:
            raise NotAnArray(f"looks like an envelope: set records = {hint!r} in the mapping")
        raise OneObject(
            "one object this large is not read as a work order: a large file must hold an "
            "array of them (or an envelope the mapping names in records)"
        )
    kind = _SCALARS.get(first)
    if kind is None:
        raise ParseError(f"not valid JSON: unexpected {first!r} at the start")
    raise NotAnArray(f"expected a work order object or an array of them, got {kind}")


def _items(handle: IO[bytes], exact: bool, records: RecordPath) -> Iterator[Any]:
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
            return
        except UnicodeDecodeError as exc:
            raise ParseError(f"not UTF-8 text ({exc.reason} after {index} records)") from None
        except _STREAM_ERRORS as exc:  # ValueError: the pure-Python backend's string decoder
            where = f"after {index} records"  # (a control byte)
            raise ParseError(f"not valid JSON: {_first_line(exc)} ({where})") from None
        if repeated:
            raise ParseError(f"duplicate key {repeated[0]!r:.60} in one object (record {index})")
        yield item
        index += 1


def _first_line(exc: Exception) -> str:
    """The first line of ijson's message (the others draw the place in the text)."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):  # the C backend's complaint about UTF-8 comes as bytes
        message = message.decode("utf-8", "replace")
    lines = str(message).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__
