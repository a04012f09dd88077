"""The JSON Schema of a mapping's client record, generated from the description: the gate every
inbound record passes before it is read (types, required fields, bounds, status values)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .paths import split

# A client path, the JSON Schema of its value, and whether a record must hold it.
SchemaLeaf = tuple[str, dict[str, Any], bool]


def record_schema(
    leaves: Iterable[SchemaLeaf],
    definitions: dict[str, Any],
    title: str,
    description: str,
) -> dict[str, Any]:
    root = _object()
    for path, schema, required in leaves:
        node = root
        *parents, name = split(path)
        for key in parents:
            child = node["properties"].get(key)
            if child is None:
                child = node["properties"][key] = _object()
            if required and key not in node["required"]:
                node["required"].append(key)
            node = child
        node["properties"][name] = schema
        if required:
            node["required"].append(name)
    _drop_empty_required(root)
    out: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "description": description,
        **root,
    }
    if definitions:
        out["definitions"] = definitions
    return out


def _object() -> dict[str, Any]:
    return {"type": "object", "required": [], "properties": {}}


def _drop_empty_required(node: dict[str, Any]) -> None:
    if not node.get("required", True):
        del node["required"]
    for child in node.get("properties", {}).values():
        if child.get("type") == "object":
            _drop_empty_required(child)
