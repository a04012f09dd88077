"""Client paths: where a value sits in a client record, dotted for nesting (``details.title``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

Keys = tuple[str, ...]


class _Missing:
    """What ``read`` returns for a path the record does not hold (None is a value: JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def split(path: str) -> Keys:
    return tuple(path.split("."))


def json_path(parts: Sequence[str | int]) -> str:
    """``$.details.title``, ``$[2]``: the JSON path problems are reported with."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def read(item: dict[str, Any], keys: Keys) -> Any:
    """The value at ``keys``, or ``MISSING`` (also when a parent is absent or not an object)."""
    value: Any = item
    for key in keys:
        if not isinstance(value, dict):
            return MISSING
        value = value.get(key, MISSING)
        if value is MISSING:
            return MISSING
    return value


def write(out: dict[str, Any], keys: Keys, value: Any) -> None:
    """Set ``value`` at ``keys``, creating the parent objects on first use (their keys then come
    in the order their first child was written)."""
    target = out
    for key in keys[:-1]:
        child = target.get(key)
        if child is None:
            child = target[key] = {}
        target = child
    target[keys[-1]] = value


def copy_json(value: Any) -> Any:
    """A copy of a JSON value's objects and arrays (scalars are immutable)."""
    if isinstance(value, dict):
        return {key: copy_json(child) for key, child in value.items()}
    if isinstance(value, list):
        return [copy_json(child) for child in value]
    return value


def reader(path: str) -> Callable[[dict[str, Any]], Any]:
    """What reads ``path`` from a record (``MISSING`` when absent); a top-level name fast."""
    keys = split(path)
    if len(keys) == 1:
        key = keys[0]
        return lambda item: item.get(key, MISSING)
    return lambda item: read(item, keys)
