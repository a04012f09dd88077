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

from .parts import Parts, Slot
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


def _writers(parts: Parts) -> dict[str, Writer]:
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
