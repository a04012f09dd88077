"""A compiled mapping: one client record format, read into TracOS work orders and written back.

Built once from a checked description (``compile.py``), immutable, then used for every record.
Reading is layered as the wire contract always was: the generated JSON Schema (compiled with
fastjsonschema: the fast gate; jsonschema lists every problem of a record that failed it), then
the rules the schema cannot say (strict integers, text every system can carry, one status, dates
that exist). Every problem is located by its JSON path in the client's own field names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import fastjsonschema
import jsonschema

from tracos_sync.domain.dates import InvalidDate
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, Status, WorkOrder
from tracos_sync.domain.text import text_problem

from .dates import DateFormat
from .paths import MISSING, Keys, json_path, read, split, write
from .status import StatusCodec

MAX_REASON = 300
# The outbound value of a client path, from the work order.
Writer = Callable[[WorkOrder], Any]


def reason(text: str) -> str:
    """A problem's reason, cut to a length a log line and a reason file can carry."""
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one TracOS field sits in the client record."""

    path: str  # dotted client path
    required: bool

    @property
    def keys(self) -> Keys:
        return split(self.path)

    @property
    def json_path(self) -> str:
        return json_path(self.keys)


def _reader(path: str) -> Callable[[dict[str, Any]], Any]:
    keys = split(path)
    if len(keys) == 1:
        key = keys[0]
        return lambda item: item.get(key, MISSING)
    return lambda item: read(item, keys)


@dataclass(frozen=True, slots=True)
class Parts:
    """What ``compile.py`` hands over: a description, checked and resolved."""

    number: Slot
    title: Slot
    created_at: Slot
    updated_at: Slot
    deleted: Slot | None
    deleted_at: Slot | None
    status: StatusCodec
    dates: DateFormat
    constants: dict[str, Any]
    defaults: dict[str, Any]
    order: list[str]  # every client path written, in output order
    schema: dict[str, Any]


class RecordMapping:
    """One client record format, both ways. Immutable; build it once (``load_mapping``)."""

    __slots__ = (
        "_check",
        "_created",
        "_defaults",
        "_deleted",
        "_deleted_at",
        "_flat_known",
        "_full_check",
        "_known",
        "_leaves",
        "_number",
        "_parts",
        "_schema",
        "_templates",
        "_title",
        "_updated",
        "_variable",
    )

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._schema = parts.schema
        self._check: Callable[[Any], Any] = fastjsonschema.compile(parts.schema)
        self._full_check = jsonschema.Draft7Validator(parts.schema)
        self._number = _reader(parts.number.path)
        self._title = _reader(parts.title.path)
        self._created = _reader(parts.created_at.path)
        self._updated = _reader(parts.updated_at.path)
        self._deleted = _reader(parts.deleted.path) if parts.deleted else None
        self._deleted_at = _reader(parts.deleted_at.path) if parts.deleted_at else None
        self._defaults = [(split(path), value) for path, value in parts.defaults.items()]
        writers = self._writers()
        self._leaves = [(split(path), writers[path]) for path in parts.order]
        self._templates, self._variable = self._flat_plan(writers)
        self._known = _tree(parts.order)
        self._flat_known = (
            frozenset(self._known) if all(v is None for v in self._known.values()) else None
        )

    # -- the client's field names, for messages and for the connectors' own checks

    @property
    def number_path(self) -> str:
        """JSON path of the work-order number: ``$.orderNo``."""
        return self._parts.number.json_path

    @property
    def updated_path(self) -> str:
        """JSON path of the last-update instant: ``$.lastUpdateDate``."""
        return self._parts.updated_at.json_path

    def json_schema(self) -> dict[str, Any]:
        """The client record's JSON Schema (a copy: the mapping stays as built)."""
        schema: dict[str, Any] = _copy(self._schema)
        return schema

    # -- inbound

    def decode(self, item: Any, unknown_fields: set[str] | None = None) -> WorkOrder:
        """Client record -> work order. Raises ``RecordRejected`` listing its problems; adds the
        paths of fields this mapping does not know to ``unknown_fields`` (for a debug line)."""
        try:
            self._check(item)
        except fastjsonschema.JsonSchemaValueException:
            raise RecordRejected(self._schema_problems(item)) from None
        if self._defaults:
            item = self._with_defaults(item)
        number = self._number(item)
        if type(number) is not int:  # the schema takes 1.0 for an integer; we do not
            raise RecordRejected(
                [Problem(self.number_path, f"{number!r:.60} is not of type 'integer'")]
            )
        title = self._title(item)
        problem = text_problem(title)
        if problem is not None:
            raise RecordRejected([Problem(self._parts.title.json_path, problem)])
        if unknown_fields is not None:
            self._collect_unknown(item, unknown_fields)
        return self._translate(item, number, title)

    def _translate(self, item: dict[str, Any], number: int, title: str) -> WorkOrder:
        parts = self._parts
        problems: list[Problem] = []
        status: Status | None = None
        try:
            status = parts.status.decode(item)
        except ValueError as exc:
            problems.append(Problem("$", reason(str(exc))))

        def instant(slot: Slot, value: Any) -> datetime | None:
            try:
                return parts.dates.parse(value)
            except InvalidDate as exc:
                problems.append(Problem(slot.json_path, reason(str(exc))))
                return None

        created = instant(parts.created_at, self._created(item))
        updated = instant(parts.updated_at, self._updated(item))
        # A format without a deleted field cannot say: TracOS keeps its own (None).
        deleted = None if self._deleted is None else self._deleted(item) is True
        # Deleted without a date of its own: deleted at its last update at the latest.
        deleted_at = updated if deleted else None
        slot = parts.deleted_at
        if slot is not None and self._deleted_at is not None:
            raw = self._deleted_at(item)
            if raw is not MISSING and raw is not None:
                # Read even when not deleted (then dropped): a garbage date is a sign of a
                # garbage record.
                stamp = instant(slot, raw)
                if deleted:
                    deleted_at = stamp
        if problems or status is None or created is None or updated is None:
            raise RecordRejected(problems)
        return WorkOrder(
            number=number,
            status=status,
            title=title,
            created_at=created,
            updated_at=updated,
            deleted=deleted,
            deleted_at=deleted_at,
        )

    def key_of(self, item: Any) -> tuple[datetime, int] | None:
        """(last update, number) of a raw record, leniently: None when either is unreadable.
        For records that may not decode (a refused one still says what the client holds)."""
        if not isinstance(item, dict):
            return None
        number = self._number(item)
        if type(number) is not int:
            return None
        stamp = self.updated_of(item)
        return None if stamp is None else (stamp, number)

    def updated_of(self, item: Any) -> datetime | None:
        """The last-update instant of a raw record, or None when it cannot be read."""
        if not isinstance(item, dict):
            return None
        value = self._updated(item)
        return None if value is MISSING else self._parts.dates.lenient(value)

    def _schema_problems(self, item: Any) -> list[Problem]:
        problems = []
        for err in self._full_check.iter_errors(item):
            parts = list(err.absolute_path)
            if err.validator == "required":
                # Point at the missing field itself, not at its parent object.
                parts.append(err.message.split("'")[1])
            problems.append(Problem(json_path(parts), reason(err.message)))
        return problems or [Problem("$", "does not match the work-order schema")]

    def _with_defaults(self, item: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        for keys, value in self._defaults:
            if read(item, keys) is not MISSING:
                continue
            if out is None:
                out = _copy(item)
            write(out, keys, value)
        return item if out is None else out

    def _collect_unknown(self, item: dict[str, Any], into: set[str]) -> None:
        if self._flat_known is not None:
            if len(item) > len(self._flat_known) or not self._flat_known.issuperset(item):
                into.update(item.keys() - self._flat_known)
            return
        _unknown(item, self._known, "", into)

    # -- outbound

    def encode(self, order: WorkOrder) -> dict[str, Any]:
        """Work order -> the client record, keys in the mapping's order. Raises
        ``RecordRejected`` for an order this format cannot write (a date whose local time falls
        outside years 1-9999 in the mapping's zone): the sinks refuse that order alone."""
        try:
            if self._templates is not None:
                # Flat records: a copy of the status's template (keys in order, status and
                # constants filled in), then the order's own values. Twice as fast as key by key.
                out = self._templates[order.status].copy()
                for key, value in self._variable:
                    out[key] = value(order)
                return out
            out = {}
            for keys, value in self._leaves:
                if len(keys) == 1:
                    out[keys[0]] = value(order)
                else:
                    write(out, keys, value(order))
            return out
        except InvalidDate:
            raise RecordRejected(self._unwritable(order)) from None

    def _unwritable(self, order: WorkOrder) -> list[Problem]:
        """Each date of ``order`` this format cannot write, located at its client path."""
        parts = self._parts
        dates: list[tuple[str, Slot | None, datetime | None]] = [
            ("createdAt", parts.created_at, order.created_at),
            ("updatedAt", parts.updated_at, order.updated_at),
        ]
        if order.deleted:
            dates.append(("deletedAt", parts.deleted_at, order.deleted_at or order.updated_at))
        problems = []
        for name, slot, value in dates:
            if slot is None or value is None:
                continue
            try:
                parts.dates.format(value)
            except InvalidDate as exc:
                problems.append(Problem(slot.json_path, reason(f"{name} {exc}"), order.number))
        return problems or [Problem("$", "cannot be written in this format", order.number)]

    def _flat_plan(
        self, writers: dict[str, Writer]
    ) -> tuple[dict[Status, dict[str, Any]] | None, list[tuple[str, Writer]]]:
        """For a flat record: per status, the record with every value that depends on the
        status alone; and the paths written from the order itself."""
        if any(len(keys) > 1 for keys, _ in self._leaves):
            return None, []
        fixed = set(self._parts.constants) | {path for path, _ in self._parts.status.leaves()}
        templates = {
            status: {
                path: writers[path](cast(WorkOrder, _Probe(status))) if path in fixed else None
                for path in self._parts.order
            }
            for status in Status
        }
        variable = [(path, writers[path]) for path in self._parts.order if path not in fixed]
        return templates, variable

    def _writers(self) -> dict[str, Writer]:
        parts = self._parts
        fmt = parts.dates.format
        writers: dict[str, Writer] = {
            parts.number.path: _number,
            parts.title.path: _title,
            parts.created_at.path: lambda order: fmt(order.created_at),
            parts.updated_at.path: lambda order: fmt(order.updated_at),
        }
        for path, of_status in parts.status.leaves():
            writers[path] = _on_status(of_status)
        if parts.deleted is not None:
            writers[parts.deleted.path] = _deleted
        if parts.deleted_at is not None:
            # Mirrors inbound: deleted without its own date was deleted at its last update.
            writers[parts.deleted_at.path] = lambda order: (
                fmt(order.deleted_at or order.updated_at) if order.deleted else None
            )
        for path, value in parts.constants.items():
            writers[path] = _constant(value)
        return writers


@dataclass(frozen=True, slots=True)
class _Probe:
    """Stands in for a work order where only the status is read."""

    status: Status


def _number(order: WorkOrder) -> int:
    return order.number


def _title(order: WorkOrder) -> str:
    return order.title


def _deleted(order: WorkOrder) -> bool:
    return bool(order.deleted)


def _on_status(of_status: Callable[[Status], Any]) -> Writer:
    return lambda order: of_status(order.status)


def _constant(value: Any) -> Writer:
    return lambda _order: value


Tree = dict[str, "Tree | None"]


def _tree(paths: list[str]) -> Tree:
    root: Tree = {}
    for path in paths:
        node = root
        *parents, name = split(path)
        for key in parents:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            node = child
        node[name] = None
    return root


def _unknown(item: dict[str, Any], known: Tree, prefix: str, into: set[str]) -> None:
    for key, value in item.items():
        if key not in known:
            into.add(prefix + key)
            continue
        sub = known[key]
        if sub is not None and isinstance(value, dict):
            _unknown(value, sub, f"{prefix}{key}.", into)


def _copy(value: Any) -> Any:
    """A copy of a JSON value's objects and arrays (scalars are immutable)."""
    if isinstance(value, dict):
        return {key: _copy(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_copy(child) for child in value]
    return value
