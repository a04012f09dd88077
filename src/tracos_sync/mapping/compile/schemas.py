"""The JSON Schema of the client record, from the checked description: one schema a client
path (``FIELD_SCHEMAS`` for the TracOS fields, the status codec's own, one a constant); and
each default checked against the schema of its path, as a value the client sent would be."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema

from ..dates import MAX_DATE_CHARS, DateFormat
from ..parts import Slot
from ..schema import SchemaLeaf, record_schema
from ..status import StatusCodec
from .checks import MAX_NUMBER, Checks
from .dates import date_definition, date_problems

Schema = dict[str, Any]

# TracOS field -> the schema of its client value, given the schema of one date.
FIELD_SCHEMAS: dict[str, Callable[[Schema], Schema]] = {
    "number": lambda _date: {
        "description": "Business key: the TracOS work-order number (a BSON int64).",
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_NUMBER,
    },
    "title": lambda _date: {"description": "TracOS title.", "type": "string"},
    # "$ref" takes no siblings in draft 7: a reference stays alone.
    "created_at": lambda date: (
        dict(date) if "$ref" in date else {**date, "description": "TracOS createdAt."}
    ),
    "updated_at": lambda date: (
        dict(date)
        if "$ref" in date
        else {**date, "description": "TracOS updatedAt: decides who is newer."}
    ),
    "deleted": lambda _date: {"description": "TracOS deleted.", "type": "boolean"},
    "deleted_at": lambda date: {
        "description": "TracOS deletedAt (deleted without one: the last update).",
        "oneOf": [date, {"type": "null"}],
    },
}


def schema_leaves(
    slots: dict[str, Slot],
    status: StatusCodec,
    dates: DateFormat,
    constants: dict[str, Any],
    defaults: dict[str, Any],
) -> list[SchemaLeaf]:
    """Each client path the mapping knows, its schema, and whether a record must hold it (a
    path with a default need not)."""
    date = dates.schema()
    leaves: list[SchemaLeaf] = [
        (slot.path, FIELD_SCHEMAS[name](date), slot.required and slot.path not in defaults)
        for name, slot in slots.items()
    ]
    leaves += [
        (path, schema, required and path not in defaults)
        for path, schema, required in status.schemas()
    ]
    leaves += [
        (
            path,
            {
                "description": f"Written {json.dumps(value)} outbound; inbound only its type "
                "is checked.",
                "type": _json_type(value),
            },
            False,
        )
        for path, value in constants.items()
    ]
    return leaves


def client_record_schema(
    leaves: list[SchemaLeaf], dates: DateFormat, order: list[str]
) -> dict[str, Any]:
    """The whole record's schema, its properties in output order."""
    rank = {path: i for i, path in enumerate(order)}
    ordered = sorted(leaves, key=lambda leaf: rank[leaf[0]])
    return record_schema(
        ordered,
        {"dateTime": date_definition(dates)} if "$ref" in dates.schema() else {},
        "Client ERP work order",
        "One work order as the client ERP sends and receives it. "
        "Unknown fields are tolerated and ignored.",
    )


def check_defaults(
    leaves: list[SchemaLeaf],
    slots: dict[str, Slot],
    dates: DateFormat,
    defaults: dict[str, Any],
    checks: Checks,
) -> None:
    """A default goes through the checks a value the client sent would."""
    by_path = {path: schema for path, schema, _ in leaves}
    definitions = {"dateTime": {"type": "string", "maxLength": MAX_DATE_CHARS}}
    date_paths = {_path_of(slots, "created_at"), _path_of(slots, "deleted_at")}
    for path, value in defaults.items():
        checker = jsonschema.Draft7Validator({**by_path[path], "definitions": definitions})
        problems = [e.message for e in checker.iter_errors(value)]
        if not problems and path in date_paths:
            problems += date_problems(dates, value)
        for problem in problems:
            checks.fail(f"defaults.{path}", problem)


def _path_of(slots: dict[str, Slot], name: str) -> str | None:
    slot = slots.get(name)
    return None if slot is None else slot.path


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"
