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


def page_records(document: Any, path: str, more_path: str | None = None) -> list[Any] | None:
    """The page's records (``records_at``) when the answer has the shape described: a list at
    ``path`` and, with ``more_path``, true or false there; None otherwise."""
    try:
        records = records_at(document, path)
    except ProtocolError:
        return None
    if more_path is not None and not isinstance(value_at(document, more_path), bool):
        return None
    return records


def expected_shape(path: str, more_path: str | None = None) -> str:
    """The answer's shape as a message shows it: ``{"items": [...], "hasMore": true|false}``,
    ``{"d": {"results": [...]}}``, ``[...]``."""
    if path == "" and more_path is None:
        return "[...]"
    shape: dict[str, Any] = {}
    for at, value in ((path, "[...]"), (more_path or "", "true|false")):
        if not at:
            continue
        *parents, last = at.split(".")
        node = shape
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return _written(shape)


def _written(node: Any) -> str:
    if not isinstance(node, dict):
        return str(node)
    return "{" + ", ".join(f'"{k}": {_written(v)}' for k, v in node.items()) + "}"
