"""The JSON Schema of the client record, from the checked description: one schema a client
path (``FIELD_SCHEMAS`` for the TracOS fields, the status codec's own, one a constant); and
each default checked against the schema of its path, as a value the client sent would be."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tracos_sync.domain.dates import InvalidDate

from ..dates import MAX_DATE_CHARS, DateFormat
from ..instants import InstantField
from ..parts import Slot
from ..schema import SchemaLeaf, record_schema
from ..status import StatusCodec
from .checks import Checks
from .dates import date_definition
from .field_kinds import FieldKinds

Schema = dict[str, Any]

# TracOS field -> the schema of its client value, given the schema of one date.
FIELD_SCHEMAS: dict[str, Callable[[Schema], Schema]] = {
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
    "deleted_at": lambda date: {
        "description": "TracOS deletedAt (deleted without one: the last update).",
        "oneOf": [date, {"type": "null"}],
    },
}


def schema_leaves(
    slots: dict[str, Slot],
    kinds: FieldKinds,
    status: StatusCodec,
    dates: DateFormat,
    constants: dict[str, Any],
    *,
    defaults: dict[str, Any],
) -> list[SchemaLeaf]:
    """Each client path the mapping knows, its schema, and whether a record must hold it (a
    path with a default need not)."""
    date = dates.schema()
    leaves: list[SchemaLeaf] = []
    for name, slot in slots.items():
        for path, schema in _field_schemas(name, slot, kinds, date):
            leaves.append((path, schema, slot.required and path not in defaults))
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


def _field_schemas(
    name: str, slot: Slot, kinds: FieldKinds, date: Schema
) -> list[tuple[str, Schema]]:
    if name == "number":
        return [(slot.path, kinds.key.schema())]
    if name == "deleted":
        assert kinds.deleted is not None
        flag = kinds.deleted
        said = "" if flag.plain else f" ({flag.said().replace(' nor ', ', ')})"
        return [(slot.path, {"description": f"TracOS deleted{said}.", **flag.schema()})]
    base = FIELD_SCHEMAS[name](date)
    instant = kinds.instants.get(name)
    if instant is None:
        return [(slot.path, base)]
    own = instant.schemas(f"TracOS {name}", base)
    if name != "deleted_at":
        return own
    return [
        (path, schema if schema is base else {"oneOf": [schema, {"type": "null"}]})
        for path, schema in own
    ]


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
    leaves: list[SchemaLeaf], kinds: FieldKinds, defaults: dict[str, Any], checks: Checks
) -> None:
    """A default goes through the checks a value the client sent would (a date and time in
    two fields: each checked by its schema only)."""
    by_path = {path: schema for path, schema, _ in leaves}
    definitions = {"dateTime": {"type": "string", "maxLength": MAX_DATE_CHARS}}
    dates = {
        instant.path: instant
        for instant in kinds.instants.values()
        if isinstance(instant, InstantField)
    }
    if defaults:  # jsonschema only when there is a default to check (start-up time)
        import jsonschema
    for path, value in defaults.items():
        checker = jsonschema.Draft7Validator({**by_path[path], "definitions": definitions})
        problems = [e.message for e in checker.iter_errors(value)]
        instant = dates.get(path)
        if not problems and instant is not None and value is not None:
            try:
                instant.parse(value)
            except InvalidDate as exc:
                problems.append(str(exc))
        for problem in problems:
            checks.fail(f"defaults.{path}", problem)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"
