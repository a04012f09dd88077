"""What an envelope of records says besides its records (OData v2's ``{"d": {"results": [...],
"__next": ...}}``, v4's ``{"@odata.context": ..., "value": [...], "@odata.nextLink": ...}``):
its annotations, the link to the next page of a paged export, and, for a document the mapping
does not declare as one, where its records seem to be.

Read from a parsed document (a small file) or from a stream of ijson events (a large one: only
the envelope's events are looked at here, the records array itself is skipped without Python
code per event)."""

from __future__ import annotations

import collections
import itertools
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tracos_sync.logs import MASK, redact_text

# Keys that say the document is one page of a longer export: OData v4 (and 4.01's short form,
# and v3's JSON light), OData v2.
NEXT_LINK_KEYS = frozenset({"@odata.nextLink", "@nextLink", "odata.nextLink", "__next"})
# OData v2's keys of an envelope (besides ``results``); v4's annotations all start with "@".
_V2_ANNOTATIONS = frozenset({"__count", "__next", "__delta"})
# An envelope has few keys of its own besides its annotations (``value``, maybe one more).
_ENVELOPE_MAX_KEYS = 3
# How much of a large document's start is read for a hint of where its records are.
HINT_HEAD_BYTES = 64 * 1024
_SHOWN_LINK_CHARS = 300

Errors = tuple[type[Exception], ...]
Events = Iterator[tuple[str, str, Any]]


def is_annotation(key: str) -> bool:
    """An envelope's annotation (``@odata.count``, ``odata.metadata``, ``__count``): no data."""
    return key.startswith(("@", "odata.")) or key in _V2_ANNOTATIONS


def envelope_hint(document: dict[str, Any]) -> str | None:
    """The path of an array of objects in ``document`` (``d.results``, ``value``), when the
    document looks like an envelope of records rather than a record: to say so, instead of
    listing every field the "record" lacks. An envelope has few keys of its own besides its
    annotations (OData v4's ``@odata.context``, ``@odata.count``, ``@odata.nextLink``)."""
    if sum(1 for key in document if not is_annotation(key)) > _ENVELOPE_MAX_KEYS:
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


def next_link(document: Any, records: tuple[str, ...]) -> str | None:
    """The link to the next page that an object of the envelope holds (the root, or one on the
    way to the records: OData v2 puts ``__next`` beside ``results``), if any."""
    node = document
    for name in (None, *records[:-1]):
        if name is not None:
            node = node.get(name) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return None
        for key in NEXT_LINK_KEYS:
            link = node.get(key)
            if isinstance(link, str) and link:
                return link
    return None


def shown_link(link: str) -> str:
    """``link`` fit for a log line: no credentials before the host, no path parameter's value
    (``;jsessionid=``), no query value but the
    OData options' (``$skiptoken``, ``$skip``: how far the export got; an ``sap-client``, an
    ``api_key`` or a signature is masked), no fragment, cut short."""
    try:
        parts = urlsplit(link)
        query = [
            (name, value if name.startswith("$") else MASK)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        # Path parameters (``;jsessionid=…``) carry sessions: their values are masked too.
        path = re.sub(r"(;[^;/=]*=)[^;/]*", lambda m: m.group(1) + MASK, parts.path)
        shown = urlunsplit(
            parts._replace(path=path, query=urlencode(query, safe="$*,'()"), fragment="")
        )
    except ValueError:  # not a URL we can take apart: only its credentials are known
        shown = link
    shown = redact_text(shown)
    if len(shown) > _SHOWN_LINK_CHARS:
        shown = shown[:_SHOWN_LINK_CHARS] + "..."
    return shown


@dataclass(slots=True)
class EnvelopeScan:
    """What a streamed pass over an envelope found. ``complete`` is false when the bytes stopped
    being JSON (then nothing else here is sure: the records' own pass says why)."""

    complete: bool = False
    holds_records: bool = False  # an array at the records path
    duplicate: str | None = None  # a key repeated in one of the envelope's objects
    next_link: str | None = None


@dataclass(slots=True)
class _Open:
    """An object or array of the envelope that is open at this point of the events."""

    keys: set[str] | None  # the object's keys so far; None for an array
    key: str | None = None  # the object's key being read
    on_path: bool = False  # the object is the root or on the way to the records


def scan_envelope(
    events: Events,
    records: tuple[str, ...],
    errors: Errors,
) -> EnvelopeScan:
    """Walk a document's ijson events outside the array of records at ``records``: refuse a
    repeated key in any of the envelope's objects (the records' objects are the records pass's),
    note the array and a next-page link. The records array's own events are consumed by C code
    (``takewhile`` comparing each event with the array's end) so that this costs about what
    parsing costs. ``errors``: what the events raise where the bytes stop being JSON."""
    found = EnvelopeScan()
    wanted = ".".join(records)
    end = (wanted, "end_array", None)
    stack: list[_Open] = []
    try:
        for prefix, event, value in events:
            top = stack[-1] if stack else None
            if event == "map_key":
                assert top is not None  # a key is in an object: JSON's grammar
                assert top.keys is not None
                if value in top.keys:
                    found.duplicate = value
                    return found
                top.keys.add(value)
                top.key = value
            elif event == "start_map":
                stack.append(_Open(set(), on_path=_leads_on(stack, records)))
            elif event == "start_array":
                if prefix == wanted and _leads_on(stack, records, to_end=True):
                    found.holds_records = True
                    # Past the records' array (its end event included) without a Python call
                    # per event.
                    collections.deque(
                        itertools.takewhile(partial(operator.ne, end), events), maxlen=0
                    )
                    continue
                stack.append(_Open(None))
            elif event in ("end_map", "end_array"):
                stack.pop()
            elif (
                event == "string"
                and top is not None
                and top.on_path
                and top.key in NEXT_LINK_KEYS
                and value
                and found.next_link is None
            ):
                found.next_link = value
    except errors:
        return found
    found.complete = True
    return found


def _leads_on(stack: list[_Open], records: tuple[str, ...], to_end: bool = False) -> bool:
    """Whether the value starting now is on the way to the records (the root, ``d`` of
    ``d.results``), or, ``to_end``, is at the records path itself."""
    depth = len(stack)
    if depth == 0:
        return not to_end
    top = stack[-1]
    if not top.on_path or top.keys is None or top.key != records[depth - 1]:
        return False
    return depth == len(records) if to_end else depth < len(records)


def hint_from_head(events: Events, errors: Errors) -> str | None:
    """Where the records of a large object seem to be, from the events of its first bytes
    (``HINT_HEAD_BYTES``; they stop with an error there): the first array of objects at most two
    objects deep (``value``, ``d.results``), in an object that has few keys of its own so far
    besides its annotations (a record's list of objects is not an envelope)."""
    array_at: str | None = None  # the prefix of the array just opened
    keys = 0  # the document's own keys so far, annotations aside
    try:
        for prefix, event, value in events:
            if event == "start_map" and array_at is not None and prefix == f"{array_at}.item":
                return array_at if keys <= _ENVELOPE_MAX_KEYS else None
            if event == "map_key" and not prefix and not is_annotation(value):
                keys += 1
            names = prefix.split(".")
            array_at = (
                prefix
                if event == "start_array" and prefix and len(names) <= 2 and "item" not in names
                else None
            )
    except errors:
        return None
    return None
