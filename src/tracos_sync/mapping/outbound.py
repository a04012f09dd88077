"""Writing a work order as a client record, keys in the mapping's order. A flat record is a
copy of its status's template (keys in order, status and constants filled in) with the order's
own values set: twice as fast as key by key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from tracos_sync.domain.dates import InvalidDate
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, Status, WorkOrder

from .flags import FlagCodec
from .instants import Instant, InstantField
from .keys import IntegerKey, KeyCodec
from .parts import Parts
from .paths import split, write
from .reasons import reason

# The outbound value of a client path, from the work order.
Writer = Callable[[WorkOrder], Any]


class Outbound:
    """The writers of one mapping's client paths."""

    __slots__ = ("_leaves", "_parts", "_templates", "_variable")

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        writers = _writers(parts)
        self._leaves = [(split(path), writers[path]) for path in parts.order]
        self._templates, self._variable = self._flat_plan(writers)

    def encode(self, order: WorkOrder) -> dict[str, Any]:
        """The client record of ``order``. Raises ``RecordRejected`` for an order this format
        cannot write (a date whose local time falls outside years 1-9999 in its zone)."""
        try:
            if self._templates is not None:
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
        except ValueError as exc:  # a number the key's format cannot hold
            problem = Problem(self._parts.number.json_path, reason(str(exc)), order.number)
            raise RecordRejected([problem]) from None

    def _unwritable(self, order: WorkOrder) -> list[Problem]:
        """Each date of ``order`` this format cannot write, located at its client path."""
        instants = self._parts.instants
        dates: list[tuple[str, Instant | None, datetime | None]] = [
            ("createdAt", instants["created_at"], order.created_at),
            ("updatedAt", instants["updated_at"], order.updated_at),
        ]
        if order.deleted:
            deleted_at = order.deleted_at or order.updated_at
            dates.append(("deletedAt", instants.get("deleted_at"), deleted_at))
        problems = []
        for name, field, value in dates:
            if field is None or value is None:
                continue
            try:
                field.format(value)
            except InvalidDate as exc:
                problems.append(Problem(field.json_path, reason(f"{name} {exc}"), order.number))
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


def _writers(parts: Parts) -> dict[str, Writer]:
    key = parts.key
    writers: dict[str, Writer] = {
        parts.number.path: _number if isinstance(key, IntegerKey) else _formatted(key),
        parts.title.path: _title,
    }
    instants = parts.instants
    writers.update(_instant(instants["created_at"], _created))
    writers.update(_instant(instants["updated_at"], _updated))
    for path, of_status in parts.status.leaves():
        writers[path] = _on_status(of_status)
    if parts.deleted is not None:
        flag = parts.deleted_flag
        plain = flag is None or flag.plain
        writers[parts.deleted.path] = _deleted if plain else _encoded(flag)
    if "deleted_at" in instants:
        writers.update(_instant(instants["deleted_at"], _deleted_at))
    for path, value in parts.constants.items():
        writers[path] = _constant(value)
    return writers


@dataclass(frozen=True, slots=True)
class _Probe:
    """Stands in for a work order where only the status is read."""

    status: Status


def _number(order: WorkOrder) -> int:
    return order.number


def _formatted(key: KeyCodec) -> Writer:
    encode = key.encode
    return lambda order: encode(order.number)


def _created(order: WorkOrder) -> datetime:
    return order.created_at


def _updated(order: WorkOrder) -> datetime:
    return order.updated_at


def _deleted_at(order: WorkOrder) -> datetime | None:
    # Mirrors inbound: deleted without its own date was deleted at its last update.
    return (order.deleted_at or order.updated_at) if order.deleted else None


def _instant(field: Instant, of: Callable[[WorkOrder], datetime | None]) -> dict[str, Writer]:
    """The writer of each path of a date (a date and its time: each its own part)."""
    paths = field.paths()
    if len(paths) == 1 and isinstance(field, InstantField):
        fmt = field.dates.format
        none = field.no_date  # what no date is written as (None: null)

        def one(order: WorkOrder) -> Any:
            value = of(order)
            return none if value is None else fmt(value)

        return {paths[0]: one}
    return {path: _part(field, of, index) for index, path in enumerate(paths)}


def _part(field: Instant, of: Callable[[WorkOrder], datetime | None], index: int) -> Writer:
    return lambda order: field.format(of(order))[index]


def _title(order: WorkOrder) -> str:
    return order.title


def _deleted(order: WorkOrder) -> bool:
    return bool(order.deleted)


def _encoded(flag: FlagCodec | None) -> Writer:
    assert flag is not None
    encode = flag.encode
    return lambda order: encode(bool(order.deleted))


def _on_status(of_status: Callable[[Status], Any]) -> Writer:
    return lambda order: of_status(order.status)


def _constant(value: Any) -> Writer:
    return lambda _order: value
