"""The status vocabulary, both ways: boolean flags (at most one true) or one field with a table
of values. Built from a description already checked (``compile/``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from tracos_sync.domain.model import Status

from .paths import MISSING, Keys, read, split

# A client path and what it is written from, in output order.
Leaf = tuple[str, Callable[[Status], Any]]


class StatusCodec(ABC):
    @abstractmethod
    def decode(self, item: dict[str, Any]) -> Status:
        """The status of a record that passed the schema; ``ValueError`` when it says none."""

    @abstractmethod
    def leaves(self) -> list[Leaf]:
        """Each client path written outbound, with its value for a status."""

    @abstractmethod
    def schemas(self) -> list[tuple[str, dict[str, Any], bool]]:
        """Each client path read inbound: its JSON Schema and whether it is required."""


class FlagStatus(StatusCodec):
    """``isDone: true`` -> completed. More than one flag true is ambiguous and refused; none true
    means ``none``. Outbound exactly the status's flag is true (none when the status has no
    flag of its own)."""

    def __init__(self, flags: dict[str, Status], none: Status, optional: set[str]) -> None:
        self._flags = [(path, split(path), status) for path, status in flags.items()]
        self._flat = all(len(keys) == 1 for _, keys, _ in self._flags)
        self._none = none
        self._optional = optional

    def decode(self, item: dict[str, Any]) -> Status:
        if self._flat:
            raised = [(p, s) for p, _, s in self._flags if item.get(p) is True]
        else:
            raised = [(p, s) for p, keys, s in self._flags if read(item, keys) is True]
        if len(raised) > 1:
            raise ValueError(f"ambiguous status: {', '.join(p for p, _ in raised)} are all true")
        return raised[0][1] if raised else self._none

    def leaves(self) -> list[Leaf]:
        return [(path, _is(status)) for path, _, status in self._flags]

    def schemas(self) -> list[tuple[str, dict[str, Any], bool]]:
        return [
            (
                path,
                {
                    "type": "boolean",
                    "description": f"true: TracOS status {status.value}"
                    + (" (may be absent: false)" if path in self._optional else ""),
                },
                path not in self._optional,
            )
            for path, _, status in self._flags
        ]


def _is(status: Status) -> Callable[[Status], bool]:
    return lambda current: current is status


class FieldStatus(StatusCodec):
    """``status: "DONE"`` -> completed, through the table; outbound the status's one value.
    Required (a default in the description stands in for an absent one)."""

    def __init__(self, path: str, values: dict[str, Status], write: dict[Status, str]) -> None:
        self.path = path
        self._keys: Keys = split(path)
        self._values = values
        self._write = write

    def decode(self, item: dict[str, Any]) -> Status:
        value = read(item, self._keys)
        status = self._values.get(value) if isinstance(value, str) else None
        if status is None:  # the schema's enum lets nothing else through: a defect if reached
            shown = "absent" if value is MISSING else repr(value)
            raise ValueError(f"unknown status {shown:.60}")
        return status

    def leaves(self) -> list[Leaf]:
        return [(self.path, self._write.__getitem__)]

    def schemas(self) -> list[tuple[str, dict[str, Any], bool]]:
        table = ", ".join(f"{v} -> {s.value}" for v, s in self._values.items())
        schema = {"type": "string", "enum": list(self._values), "description": table}
        return [(self.path, schema, True)]  # a default makes it optional
