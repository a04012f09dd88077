"""The status vocabulary, both ways: boolean flags (at most one true) or one field with a table
of values. Built from a description already checked (``compile/``)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from tracos_sync.domain.model import Status

from .flags import FlagCodec
from .paths import MISSING, Keys, json_path, read, split
from .said import json_text

# A client path and what it is written from, in output order.
Leaf = tuple[str, Callable[[Status], Any]]


class StatusRefused(ValueError):
    """A record's status cannot be read: ``path`` is where (the status field, a flag, or the
    record for flags that say two statuses)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class StatusCodec(ABC):
    @abstractmethod
    def decode(self, item: dict[str, Any]) -> Status:
        """The status of a record; ``StatusRefused`` when it says none, or several."""

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

    def __init__(
        self,
        flags: dict[str, Status],
        none: Status,
        optional: set[str],
        encoding: FlagCodec | None = None,
    ) -> None:
        self._flags = [(path, split(path), status) for path, status in flags.items()]
        self._flat = all(len(keys) == 1 for _, keys, _ in self._flags)
        self._none = none
        self._optional = optional
        self._encoding = encoding if encoding is not None else FlagCodec()

    def decode(self, item: dict[str, Any]) -> Status:
        if not self._encoding.plain:
            return self._decode_encoded(item)
        if self._flat:
            raised = [(p, s) for p, _, s in self._flags if item.get(p) is True]
        else:
            raised = [(p, s) for p, keys, s in self._flags if read(item, keys) is True]
        return self._one(raised)

    def _decode_encoded(self, item: dict[str, Any]) -> Status:
        raised = []
        for path, keys, status in self._flags:
            try:
                if self._encoding.decode(read(item, keys)):
                    raised.append((path, status))
            except ValueError as exc:
                raise StatusRefused(json_path(keys), str(exc)) from None
        return self._one(raised)

    def _one(self, raised: list[tuple[str, Status]]) -> Status:
        if len(raised) > 1:
            raise StatusRefused(
                "$", f"ambiguous status: {', '.join(p for p, _ in raised)} are all true"
            )
        return raised[0][1] if raised else self._none

    def leaves(self) -> list[Leaf]:
        encode = self._encoding.encode
        return [(path, _is(status, encode)) for path, _, status in self._flags]

    def schemas(self) -> list[tuple[str, dict[str, Any], bool]]:
        return [
            (
                path,
                {
                    **self._encoding.schema(),
                    "description": f"true: TracOS status {status.value}"
                    + (" (may be absent: false)" if path in self._optional else ""),
                },
                path not in self._optional,
            )
            for path, _, status in self._flags
        ]


def _is(status: Status, encode: Callable[[bool], Any]) -> Callable[[Status], Any]:
    return lambda current: encode(current is status)


class FieldStatus(StatusCodec):
    """``status: "DONE"`` (or ``20``) -> completed, through the table; outbound the
    status's one value. Values are of one JSON type (``str`` or ``int``), compared with their
    type: ``"20"`` is not ``20``, ``true`` is not ``1``. Required (a default in the
    description stands in for an absent one)."""

    _JSON_TYPES: ClassVar = {str: "string", int: "integer"}

    def __init__(self, path: str, values: dict[Any, Status], write: dict[Status, Any]) -> None:
        self.path = path
        self._keys: Keys = split(path)
        self._values = values
        self._write = write
        self._type = type(next(iter(values)))

    def decode(self, item: dict[str, Any]) -> Status:
        value = read(item, self._keys)
        status = self._values.get(value) if type(value) is self._type else None
        if status is None:  # 1.0 passes the schema's enum of integers (it equals 1)
            shown = "absent" if value is MISSING else json_text(value)
            allowed = ", ".join(json.dumps(v) for v in self._values)
            raise StatusRefused(json_path(self._keys), f"{shown} is not one of {allowed}")
        return status

    def leaves(self) -> list[Leaf]:
        return [(self.path, self._write.__getitem__)]

    def schemas(self) -> list[tuple[str, dict[str, Any], bool]]:
        table = ", ".join(
            f"{v if self._type is str else json.dumps(v)} -> {s.value}"
            for v, s in self._values.items()
        )
        schema = {
            "type": self._JSON_TYPES[self._type],
            "enum": list(self._values),
            "description": table,
        }
        return [(self.path, schema, True)]  # a default makes it optional
