"""Reading a client record that passed the schema into a work order: defaults filled in, each
field read from its client path, dates parsed, every problem located at its JSON path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracos_sync.domain.dates import InvalidDate
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, Status, WorkOrder

from .instants import Instant
from .parts import Parts
from .paths import MISSING, copy_json, read, reader, split, write
from .reasons import reason

Tree = dict[str, "Tree | None"]


class Inbound:
    """The readers of one mapping's fields. ``number``, ``title`` and ``updated`` read a raw
    value (``MISSING`` when absent); ``has_defaults``: whether ``with_defaults`` may change a
    record (plain attributes: read for every record)."""

    __slots__ = (
        "_created",
        "_defaults",
        "_deleted",
        "_deleted_at",
        "_flag",
        "_flat_known",
        "_known",
        "_parts",
        "has_defaults",
        "number",
        "title",
        "updated",
    )

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self.number = reader(parts.number.path)
        self.title = reader(parts.title.path)
        self._created = parts.instants["created_at"]
        self.updated = parts.instants["updated_at"]
        self._deleted = reader(parts.deleted.path) if parts.deleted else None
        self._flag = parts.deleted_flag
        self._deleted_at = parts.instants.get("deleted_at")
        self._defaults = [(split(path), value) for path, value in parts.defaults.items()]
        self.has_defaults = bool(self._defaults)
        self._known = _tree(parts.order)
        self._flat_known = (
            frozenset(self._known) if all(v is None for v in self._known.values()) else None
        )

    def with_defaults(self, item: dict[str, Any]) -> dict[str, Any]:
        """``item``, or a copy of it with a default at each path it lacks."""
        out: dict[str, Any] | None = None
        for keys, value in self._defaults:
            if read(item, keys) is not MISSING:
                continue
            if out is None:
                out = copy_json(item)
            write(out, keys, value)
        return item if out is None else out

    def collect_unknown(self, item: dict[str, Any], into: set[str]) -> None:
        """Adds to ``into`` the path of each field of ``item`` this mapping does not know."""
        if self._flat_known is not None:
            if len(item) > len(self._flat_known) or not self._flat_known.issuperset(item):
                into.update(item.keys() - self._flat_known)
            return
        _unknown(item, self._known, "", into)

    def translate(self, item: dict[str, Any], number: int, title: str) -> WorkOrder:
        """The work order of a record whose number and title were read and checked."""
        parts = self._parts
        problems: list[Problem] = []
        status: Status | None = None
        try:
            status = parts.status.decode(item)
        except ValueError as exc:
            problems.append(Problem("$", reason(str(exc))))

        def instant(field: Instant, value: Any) -> datetime | None:
            try:
                return field.parse(value)
            except InvalidDate as exc:
                problems.append(Problem(field.json_path, reason(str(exc))))
                return None

        created = instant(self._created, self._created.read(item))
        updated = instant(self.updated, self.updated.read(item))
        # A format without a deleted field cannot say: TracOS keeps its own (None).
        deleted: bool | None = None
        if self._deleted is not None and self._flag is not None:
            try:
                deleted = self._flag.decode(self._deleted(item))
            except ValueError as exc:
                assert parts.deleted is not None
                problems.append(Problem(parts.deleted.json_path, reason(str(exc))))
        # Deleted without a date of its own: deleted at its last update at the latest.
        deleted_at = updated if deleted else None
        if self._deleted_at is not None:
            raw = self._deleted_at.read(item)
            if raw is not MISSING and raw is not None:
                # Read even when not deleted (then dropped): a garbage date is a sign of a
                # garbage record.
                stamp = instant(self._deleted_at, raw)
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
