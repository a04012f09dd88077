"""``load_mapping``: a description -> a ``RecordMapping``, or a ``ConfigurationError`` naming
every problem found, each with its key path (``mapping.status.values.DONE: ...``).

The description's shape and types are pydantic's (``spec.py``); what makes it consistent is
checked here, where each problem can be put at the key that causes it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
from pydantic import BaseModel, ValidationError

from tracos_sync.domain.dates import InvalidDate
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.model import Status

from .dates import DateFormat, IsoDates, date_format
from .paths import split
from .record_mapping import Parts, RecordMapping, Slot
from .schema import SchemaLeaf, record_schema
from .spec import FieldSpec, FieldStatusSpec, FlagStatusSpec, MappingSpec
from .status import FieldStatus, FlagStatus, StatusCodec

STATUSES = ", ".join(s.value for s in Status)
MAX_NUMBER = 2**63 - 1  # a BSON long
MAX_PATH_DEPTH = 32  # names in one client path (details.title: 2)
MAX_PATH_CHARS = 512
# TracOS fields a record must carry (a default may stand in for the two that are not its key).
CORE = ("number", "title", "created_at", "updated_at")
NO_DEFAULT = ("number", "updated_at")  # a record's key comes from the record

Errors = list[tuple[str, str]]
Model = TypeVar("Model", bound=BaseModel)


class _Invalid(Exception):
    """The description cannot be compiled; ``errors`` says where and why."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


def load_mapping(
    description: Mapping[str, Any] | None, *, where: str, default_timezone: str = "UTC"
) -> RecordMapping:
    """The mapping a description states (None: the built-in one, today's client format).
    Raises ``ConfigurationError`` starting with ``where`` and listing every problem."""
    if description is None:
        from .builtin import builtin_mapping

        return builtin_mapping(default_timezone)
    try:
        parts = _compile(description, default_timezone)
    except _Invalid as exc:
        listed = "; ".join(
            f"mapping{'.' if key else ''}{key}: {message}" for key, message in exc.errors
        )
        raise ConfigurationError(f"{where}: {listed}") from None
    try:
        return RecordMapping(parts)
    except Exception as exc:  # whatever the schema compilers raise: never a traceback
        raise ConfigurationError(
            f"{where}: mapping: its record schema cannot be compiled "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _compile(description: Mapping[str, Any], default_timezone: str) -> Parts:
    if not isinstance(description, Mapping):
        raise _Invalid([("", f"expected a table, got {type(description).__name__}")])
    errors: Errors = []
    spec = _validate(MappingSpec, dict(description), "", errors)
    raw_status = description.get("status")
    status_spec: FlagStatusSpec | FieldStatusSpec | None = None
    if isinstance(raw_status, Mapping):
        if "flags" in raw_status and "field" in raw_status:
            errors.append(("status", "give either flags or field, not both"))
        elif "flags" in raw_status:
            status_spec = _validate(FlagStatusSpec, dict(raw_status), "status", errors)
        elif "field" in raw_status:
            status_spec = _validate(FieldStatusSpec, dict(raw_status), "status", errors)
        else:
            errors.append(("status", "give either flags (boolean fields) or field (one value)"))
    if spec is None or status_spec is None:
        raise _Invalid(errors)
    return _Compiler(spec, status_spec, default_timezone, errors).parts()


def _validate(model: type[Model], raw: dict[str, Any], at: str, errors: Errors) -> Model | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(part) for part in err["loc"] if part != "[key]"]
            if at == "" and loc == ["status"] and isinstance(raw.get("status"), Mapping):
                continue  # a table: checked by the model of its form
            errors.append((".".join([at, *loc] if at else loc), _message(model, loc, err)))
        return None


def _message(model: type[BaseModel], loc: list[str], err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _keys_of(model, loc[:-1])
        return "unknown key" + (f" (expected one of: {', '.join(known)})" if known else "")
    if kind == "model_type" and len(loc) == 2 and loc[0] == "fields":
        return 'expected a client path ("summary") or a table (path = "summary", required = ...)'
    if kind == "missing":
        return "required key is missing"
    if kind == "enum":
        return f"unknown TracOS status {err['input']!r:.60} (expected one of: {STATUSES})"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r:.60} is not a client path (names joined by dots, none empty)"
    return str(err["msg"])


def _keys_of(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The keys the table at ``loc`` may hold, to name them after a typo."""
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        inner = [
            a
            for a in (get_args(field.annotation) or (field.annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not inner:
            return []
        model = inner[0]
    return list(model.model_fields)


class _Compiler:
    """Resolves a description that has the right shape, collecting every inconsistency."""

    def __init__(
        self,
        spec: MappingSpec,
        status: FlagStatusSpec | FieldStatusSpec,
        default_timezone: str,
        errors: Errors,
    ) -> None:
        self.spec = spec
        self.status_spec = status
        self.default_timezone = default_timezone
        self.errors = errors
        self.used: dict[str, str] = {}  # client path -> the key that uses it

    def fail(self, key: str, message: str) -> None:
        self.errors.append((key, message))

    def parts(self) -> Parts:
        dates = self._dates()
        slots = self._slots()
        status = self._status()
        constants = self._constants()
        defaults = self._defaults(slots, dates)
        order = self._order()
        if self.errors:
            raise _Invalid(self.errors)
        assert status is not None
        leaves = self._schema_leaves(slots, status, dates, constants, defaults)
        self._check_defaults(leaves, slots, dates, defaults)
        if self.errors:
            raise _Invalid(self.errors)
        rank = {path: i for i, path in enumerate(order)}
        leaves.sort(key=lambda leaf: rank[leaf[0]])
        schema = record_schema(
            leaves,
            {"dateTime": {**_date_definition(dates), "type": "string", "maxLength": 64}}
            if "$ref" in dates.schema()
            else {},
            "Client ERP work order",
            "One work order as the client ERP sends and receives it. "
            "Unknown fields are tolerated and ignored.",
        )
        return Parts(
            number=slots["number"],
            title=slots["title"],
            created_at=slots["created_at"],
            updated_at=slots["updated_at"],
            deleted=slots.get("deleted"),
            deleted_at=slots.get("deleted_at"),
            status=status,
            dates=dates,
            constants=constants,
            defaults=defaults,
            order=order,
            schema=schema,
        )

    def _dates(self) -> DateFormat:
        if self.spec.timezone is not None and not self.spec.timezone.strip():
            self.fail("timezone", "empty (leave the key out for the default zone)")
        name = self.spec.timezone or self.default_timezone
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail("timezone", f"unknown time zone {name!r:.60} (use an IANA name such as UTC)")
            zone = ZoneInfo("UTC")
        try:
            return date_format(self.spec.date_format, zone)
        except ValueError as exc:
            self.fail("date_format", str(exc))
            return IsoDates(zone)

    def _use(self, path: str, key: str) -> None:
        """Each client path holds one thing, and a value is not also an object of values."""
        problem = _path_problem(path)
        if problem is not None:
            self.fail(key, problem)
            return
        for other, by in self.used.items():
            if other == path:
                self.fail(key, f"client path {path!r} is already used by mapping.{by}")
                return
            inner, outer = (path, other) if len(path) > len(other) else (other, path)
            if inner.startswith(outer + "."):
                self.fail(
                    key,
                    f"client path {path!r} and {other!r} (mapping.{by}) overlap: "
                    f"{outer!r} cannot be both a value and an object holding {inner!r}",
                )
                return
        self.used[path] = key

    def _slots(self) -> dict[str, Slot]:
        fields = self.spec.fields
        slots: dict[str, Slot] = {}
        given: dict[str, FieldSpec | None] = {
            "number": fields.number,
            "title": fields.title,
            "created_at": fields.created_at,
            "updated_at": fields.updated_at,
            "deleted": fields.deleted,
            "deleted_at": fields.deleted_at,
        }
        for name, field in given.items():
            if field is None:
                continue
            key = f"fields.{name}"
            self._use(field.path, key)
            if name in CORE and field.required is False:
                self.fail(
                    f"{key}.required",
                    f"{name} cannot be optional: every work order has one"
                    + ("" if name in NO_DEFAULT else " (give a default instead)"),
                )
            default_required = name != "deleted_at"
            required = default_required if field.required is None else field.required
            slots[name] = Slot(field.path, required)
        if fields.deleted_at is not None and fields.deleted is None:
            self.fail(
                "fields.deleted_at",
                "needs fields.deleted (whether the order is deleted is read from it)",
            )
        return slots

    def _status(self) -> StatusCodec | None:
        spec = self.status_spec
        before = len(self.errors)
        if isinstance(spec, FlagStatusSpec):
            owner: dict[Status, str] = {}
            for path, status in spec.flags.items():
                self._use(path, f"status.flags.{path}")
                if status in owner:
                    self.fail(
                        f"status.flags.{path}",
                        f"TracOS status {status.value} already has the flag {owner[status]!r} "
                        "(each status has one flag: the one set outbound)",
                    )
                owner.setdefault(status, path)
            lacking = [s.value for s in Status if s not in owner and s is not spec.none]
            if lacking:
                self.fail(
                    "status.flags",
                    f"no flag for TracOS status {', '.join(lacking)} (each status needs one, "
                    f"except the one no flag means: status.none = {spec.none.value})",
                )
            for path in spec.optional:
                if path not in spec.flags:
                    self.fail("status.optional", f"{path!r} is not one of status.flags")
            if len(self.errors) > before:
                return None
            return FlagStatus(dict(spec.flags), spec.none, set(spec.optional))
        self._use(spec.field, "status.field")
        by_status: dict[Status, list[str]] = {}
        for value, status in spec.values.items():
            by_status.setdefault(status, []).append(value)
        write: dict[Status, str] = {}
        for status in Status:
            values = by_status.get(status, [])
            chosen = spec.write.get(status)
            if not values:
                self.fail("status.values", f"no client value for TracOS status {status.value}")
            elif chosen is not None and chosen not in values:
                self.fail(
                    f"status.write.{status.value}",
                    f"{chosen!r:.60} is not one of the values status.values maps to "
                    f"{status.value} ({', '.join(map(repr, values))})",
                )
            elif chosen is None and len(values) > 1:
                self.fail(
                    f"status.write.{status.value}",
                    f"several client values map to {status.value} "
                    f"({', '.join(map(repr, values))}): say which one is written",
                )
            else:
                write[status] = chosen or values[0]
        if len(self.errors) > before:
            return None
        return FieldStatus(spec.field, dict(spec.values), write)

    def _constants(self) -> dict[str, Any]:
        constants: dict[str, Any] = {}
        for path, value in _flatten(self.spec.constants):
            key = f"constants.{path}"
            if not _is_path(path):
                self.fail(key, f"{path!r:.60} is not a client path")
            elif _path_problem(path) is not None:
                self.fail(key, str(_path_problem(path)))
            elif not isinstance(value, str | bool | int | float):
                self.fail(key, f"a constant is a string, number or boolean, not {_kind(value)}")
            elif _not_finite(value):
                self.fail(key, f"{value!r} is not a JSON number (a number must be finite)")
            elif isinstance(value, int) and not -(2**63) <= value <= MAX_NUMBER:
                self.fail(key, "an integer constant must fit in 64 bits (JSON's safe range)")
            else:
                self._use(path, key)
                constants[path] = value
        return constants

    def _defaults(self, slots: dict[str, Slot], dates: DateFormat) -> dict[str, Any]:
        readable = {slot.path: name for name, slot in slots.items()}
        spec = self.status_spec
        if isinstance(spec, FieldStatusSpec):
            readable[spec.field] = "status"
        else:
            readable.update(dict.fromkeys(spec.flags, "status"))
        defaults: dict[str, Any] = {}
        for path, value in _flatten(self.spec.defaults):
            key = f"defaults.{path}"
            field = readable.get(path)
            if _path_problem(path) is not None:
                self.fail(key, str(_path_problem(path)))
            elif field is None:
                self.fail(key, f"{path!r:.60} is not a client field this mapping reads")
            elif field in NO_DEFAULT:
                self.fail(key, f"{field} cannot have a default: a record's key is its own")
            elif _not_finite(value):
                self.fail(key, f"{value!r:.60} is not JSON (a number must be finite)")
            else:
                defaults[path] = value
        return defaults

    def _order(self) -> list[str]:
        written = list(self.used)  # fields, status, constants: in the description's order
        default_rank = {path: i for i, path in enumerate(written)}
        seen: set[str] = set()
        for index, path in enumerate(self.spec.order):
            if path in seen:
                self.fail(f"order.{index}", f"{path!r} is listed twice")
            elif path not in default_rank:
                self.fail(f"order.{index}", f"{path!r} is not a client path this mapping writes")
            seen.add(path)
        first = [p for p in self.spec.order if p in default_rank]
        return list(dict.fromkeys([*first, *written]))

    def _schema_leaves(
        self,
        slots: dict[str, Slot],
        status: StatusCodec,
        dates: DateFormat,
        constants: dict[str, Any],
        defaults: dict[str, Any],
    ) -> list[SchemaLeaf]:
        date = dates.schema()
        of_field: dict[str, dict[str, Any]] = {
            "number": {
                "description": "Business key: the TracOS work-order number (a BSON int64).",
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_NUMBER,
            },
            "title": {"description": "TracOS title.", "type": "string"},
            "created_at": {**date, "description": "TracOS createdAt."},
            "updated_at": {**date, "description": "TracOS updatedAt: decides who is newer."},
            "deleted": {"description": "TracOS deleted.", "type": "boolean"},
            "deleted_at": {
                "description": "TracOS deletedAt (deleted without one: the last update).",
                "oneOf": [date, {"type": "null"}],
            },
        }
        if "$ref" in date:
            for name in ("created_at", "updated_at"):  # "$ref" takes no siblings in draft 7
                of_field[name] = dict(date)
        leaves: list[SchemaLeaf] = [
            (slot.path, of_field[name], slot.required and slot.path not in defaults)
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

    def _check_defaults(
        self,
        leaves: list[SchemaLeaf],
        slots: dict[str, Slot],
        dates: DateFormat,
        defaults: dict[str, Any],
    ) -> None:
        """A default goes through the checks a value the client sent would."""
        by_path = {path: schema for path, schema, _ in leaves}
        definitions = {"dateTime": {"type": "string", "maxLength": 64}}
        date_paths = {_path_of(slots, "created_at"), _path_of(slots, "deleted_at")}
        for path, value in defaults.items():
            checker = jsonschema.Draft7Validator({**by_path[path], "definitions": definitions})
            problems = [e.message for e in checker.iter_errors(value)]
            if not problems and path in date_paths:
                problems += _date_problems(dates, value)
            for problem in problems:
                self.fail(f"defaults.{path}", problem)


def _path_of(slots: dict[str, Slot], name: str) -> str | None:
    slot = slots.get(name)
    return None if slot is None else slot.path


def _date_problems(dates: DateFormat, value: Any) -> list[str]:
    if value is None:
        return []
    try:
        dates.parse(value)
    except InvalidDate as exc:
        return [str(exc)]
    return []


def _date_definition(dates: DateFormat) -> dict[str, Any]:
    if isinstance(dates, IsoDates):
        text = (
            "ISO 8601 date-time. With an offset or Z it is exact; without one it is read in "
            "the mapping's time zone."
        )
    else:
        text = f"A date-time in the format {dates.name!r}, in the mapping's time zone."
    return {"description": text}


def _flatten(
    table: Mapping[str, Any], prefix: str = "", depth: int = 1
) -> Iterator[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``("a.b", 1)``: TOML's dotted keys make nested tables. Stops
    deeper than a client path may go (the path is then refused as too deep)."""
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth <= MAX_PATH_DEPTH:
            yield from _flatten(value, path + ".", depth + 1)
        else:
            yield path, value


def _path_problem(path: str) -> str | None:
    """A client path too deep or too long to be a record's field (and for the schema)."""
    depth = len(split(path))
    if depth > MAX_PATH_DEPTH:
        return f"client path {path[:60]!r}... is {depth} names deep (at most {MAX_PATH_DEPTH})"
    if len(path) > MAX_PATH_CHARS:
        return (
            f"client path {path[:60]!r}... is {len(path)} characters long "
            f"(at most {MAX_PATH_CHARS})"
        )
    return None


def _not_finite(value: Any) -> bool:
    """Whether ``value`` is or holds a float JSON cannot carry (TOML's ``nan``, ``inf``)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_not_finite(item) for item in value)
    if isinstance(value, Mapping):
        return any(_not_finite(item) for item in value.values())
    return False


def _is_path(path: str) -> bool:
    return all(split(path))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return "number" if isinstance(value, float) else "string"


def _kind(value: Any) -> str:
    return "an array" if isinstance(value, list) else type(value).__name__
