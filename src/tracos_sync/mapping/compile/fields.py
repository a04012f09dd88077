"""The description's client fields: where each TracOS field sits (``fields``), the values
written as they are (``constants``), the values that stand in for absent ones (``defaults``),
and the order a record is written in (``order``). Each checked, each problem at its key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..parts import Slot
from ..spec import FieldSpec, FieldsSpec
from .checks import MAX_NUMBER, Checks, flatten, is_path, not_finite, path_problem

# TracOS fields a record must carry (a default may stand in for the two that are not its key).
CORE = ("number", "title", "created_at", "updated_at")
NO_DEFAULT = ("number", "updated_at")  # a record's key comes from the record


def described(fields: FieldsSpec) -> dict[str, FieldSpec]:
    """TracOS field name -> its entry, for the fields the description gives."""
    given: dict[str, FieldSpec | None] = {
        "number": fields.number,
        "title": fields.title,
        "created_at": fields.created_at,
        "updated_at": fields.updated_at,
        "deleted": fields.deleted,
        "deleted_at": fields.deleted_at,
    }
    return {name: field for name, field in given.items() if field is not None}


def field_slots(fields: FieldsSpec, checks: Checks) -> dict[str, Slot]:
    """TracOS field name -> its place in the client record (the fields the format has)."""
    slots: dict[str, Slot] = {}
    for name, field in described(fields).items():
        key = f"fields.{name}"
        checks.use(field.path, key)
        if name in CORE and field.required is False:
            checks.fail(
                f"{key}.required",
                f"{name} cannot be optional: every work order has one"
                + ("" if name in NO_DEFAULT else " (give a default instead)"),
            )
        default_required = name != "deleted_at"
        required = default_required if field.required is None else field.required
        slots[name] = Slot(field.path, required)
    if fields.deleted_at is not None and fields.deleted is None:
        checks.fail(
            "fields.deleted_at",
            "needs fields.deleted (whether the order is deleted is read from it)",
        )
    return slots


def constants(table: Mapping[str, Any], checks: Checks) -> dict[str, Any]:
    """Client path -> the value written there outbound (inbound only its type is checked)."""
    out: dict[str, Any] = {}
    for path, value in flatten(table):
        key = f"constants.{path}"
        if not is_path(path):
            checks.fail(key, f"{path!r:.60} is not a client path")
        elif path_problem(path) is not None:
            checks.fail(key, str(path_problem(path)))
        elif not isinstance(value, str | bool | int | float):
            checks.fail(key, f"a constant is a string, number or boolean, not {_kind(value)}")
        elif not_finite(value):
            checks.fail(key, f"{value!r} is not a JSON number (a number must be finite)")
        elif isinstance(value, int) and not -(2**63) <= value <= MAX_NUMBER:
            checks.fail(key, "an integer constant must fit in 64 bits (JSON's safe range)")
        else:
            checks.use(path, key)
            out[path] = value
    return out


def defaults(table: Mapping[str, Any], readable: dict[str, str], checks: Checks) -> dict[str, Any]:
    """Client path -> the value read when a record lacks it. ``readable``: each client path
    the mapping reads -> the TracOS field read from it."""
    out: dict[str, Any] = {}
    for path, value in flatten(table):
        key = f"defaults.{path}"
        field = readable.get(path)
        if path_problem(path) is not None:
            checks.fail(key, str(path_problem(path)))
        elif field is None:
            checks.fail(key, f"{path!r:.60} is not a client field this mapping reads")
        elif field in NO_DEFAULT:
            checks.fail(key, f"{field} cannot have a default: a record's key is its own")
        elif not_finite(value):
            checks.fail(key, f"{value!r:.60} is not JSON (a number must be finite)")
        else:
            out[path] = value
    return out


def output_order(listed: list[str], checks: Checks, times: dict[str, str]) -> list[str]:
    """Every client path written: those ``listed`` first, then the rest in the description's
    order (fields, status, constants); a date's time field not listed comes right after its
    date (``times``: time path -> date path)."""
    written = list(checks.used)
    default_rank = {path: i for i, path in enumerate(written)}
    seen: set[str] = set()
    for index, path in enumerate(listed):
        if path in seen:
            checks.fail(f"order.{index}", f"{path!r} is listed twice")
        elif path not in default_rank:
            checks.fail(f"order.{index}", f"{path!r} is not a client path this mapping writes")
        seen.add(path)
    first = [p for p in listed if p in default_rank]
    ordered = [p for p in dict.fromkeys([*first, *written]) if p in seen or p not in times]
    for time, date in times.items():
        if time not in seen:
            ordered.insert(ordered.index(date) + 1, time)
    return ordered


def _kind(value: Any) -> str:
    return "an array" if isinstance(value, list) else type(value).__name__
