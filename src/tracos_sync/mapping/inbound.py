"""Reading a client record that passed the schema into a work order: defaults filled in, each
field read from its client path, dates parsed, every problem located at its JSON path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracos_sync.domain.dates import InvalidDate
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, Status, WorkOrder
from tracos_sync.domain.text import text_problem

from .instants import Instant
from .parts import Parts
from .paths import MISSING, copy_json, json_path, read, reader, split, write
from .reasons import reason
from .status import StatusRefused

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
        "_status_paths",
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
        self._status_paths = [json_path(split(p)) for p, _, _ in parts.status.schemas()]
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
        except StatusRefused as exc:
            problems.append(Problem(exc.path, reason(str(exc))))

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
            if raw is not MISSING and not self._deleted_at.is_none(raw):
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

    def problems(self, item: dict[str, Any], flagged: set[str]) -> list[Problem]:
        """Each field's own problems in a record already refused (by the schema, or for its
        key or title), for the fields at none of the ``flagged`` JSON paths (nor under one):
        a refused record lists every problem it has. Values may be of any type here."""

        def clear(*paths: str) -> bool:
            return not any(_at_or_under(path, flag) for path in paths for flag in flagged)

        parts = self._parts
        found: list[Problem] = []
        if clear(parts.number.json_path):
            try:
                parts.key.decode(self.number(item))
            except ValueError as exc:
                found.append(Problem(parts.number.json_path, reason(str(exc))))
        title = self.title(item)
        if clear(parts.title.json_path) and isinstance(title, str):
            problem = text_problem(title)
            if problem is not None:
                found.append(Problem(parts.title.json_path, problem))
        if clear(*self._status_paths):
            try:
                parts.status.decode(item)
            except StatusRefused as exc:
                found.append(Problem(exc.path, reason(str(exc))))
        deleted, flag, read_deleted = parts.deleted, self._flag, self._deleted
        if deleted and flag and read_deleted and clear(deleted.json_path):
            try:
                flag.decode(read_deleted(item))
            except ValueError as exc:
                found.append(Problem(deleted.json_path, reason(str(exc))))
        for field in parts.instants.values():
            if not clear(*(json_path(split(path)) for path in field.paths())):
                continue
            raw = field.read(item)
            if raw is MISSING or raw is None:
                continue  # absent: the schema's to say, when it is required
            if field is self._deleted_at and field.is_none(raw):
                continue
            try:
                field.parse(raw)
            except (InvalidDate, ValueError, TypeError) as exc:
                found.append(Problem(field.json_path, reason(str(exc))))
        return found


def _at_or_under(path: str, flagged: str) -> bool:
    """Whether the JSON path ``path`` is ``flagged`` or inside it."""
    return flagged in (path, "$") or path.startswith((flagged + ".", flagged + "["))


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
