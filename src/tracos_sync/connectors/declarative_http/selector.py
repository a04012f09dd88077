"""Where an answer holds what we need: a value at a dotted path (``d.results``, ``meta.next``).

A first, minimal record selector (``read.records``); the mapping's envelopes will say more.
"""

from __future__ import annotations

from typing import Any

from .requester import ProtocolError


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What ``value_at`` gives for a path the document does not hold."""


def value_at(document: Any, path: str | tuple[str, ...]) -> Any:
    """The value at ``path`` (dotted, or its parts when a key holds a dot: ``@odata.nextLink``),
    or ``MISSING``."""
    parts = path.split(".") if isinstance(path, str) else path
    value = document
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def field_at(document: Any, path: str) -> Any:
    """A record's field at ``path``: as one key first (``@odata.etag`` holds a dot), else
    dotted; None when absent (a record's version, read or answered)."""
    if isinstance(document, dict) and path in document:
        return document[path]
    found = value_at(document, path)
    return None if found is MISSING else found


def records_at(document: Any, path: str) -> list[Any]:
    """The page's records: the list at ``path`` (``""``: the document itself). Anything else is
    a ``ProtocolError`` naming the path."""
    found = document if path == "" else value_at(document, path)
    if not isinstance(found, list):
        what = "missing" if found is MISSING else f"a {type(found).__name__}, not a list"
        raise ProtocolError(
            f"the answer's records ({path or 'the whole answer'}) are {what}: set read.records "
            "to where the API puts them"
        )
    return found
