"""What compiling one description collects as it goes: every problem at its key path, and the
client paths used so far (each holds one thing). With the limits a client path and a value
must keep, checked wherever a description names one."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from ..paths import split

MAX_NUMBER = 2**63 - 1  # a BSON long
MAX_PATH_DEPTH = 32  # names in one client path (details.title: 2)
MAX_PATH_CHARS = 512

# (key path in the description, what is wrong there)
Errors = list[tuple[str, str]]


class Invalid(Exception):
    """The description cannot be compiled; ``errors`` says where and why."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors


class Checks:
    """The problems found so far, and which key uses each client path."""

    def __init__(self, errors: Errors) -> None:
        self.errors = errors
        self.used: dict[str, str] = {}  # client path -> the key that uses it, in order of use

    def fail(self, key: str, message: str) -> None:
        self.errors.append((key, message))

    def found(self) -> int:
        """How many problems so far (to tell whether a step added any)."""
        return len(self.errors)

    def stop_if_any(self) -> None:
        if self.errors:
            raise Invalid(self.errors)

    def use(self, path: str, key: str) -> None:
        """Each client path holds one thing, and a value is not also an object of values."""
        problem = path_problem(path)
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


def path_problem(path: str) -> str | None:
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


def is_path(path: str) -> bool:
    return all(split(path))


def flatten(
    table: Mapping[str, Any], prefix: str = "", depth: int = 1
) -> Iterator[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``("a.b", 1)``: TOML's dotted keys make nested tables. Stops
    deeper than a client path may go (the path is then refused as too deep)."""
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth <= MAX_PATH_DEPTH:
            yield from flatten(value, path + ".", depth + 1)
        else:
            yield path, value


def not_finite(value: Any) -> bool:
    """Whether ``value`` is or holds a float JSON cannot carry (TOML's ``nan``, ``inf``)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(not_finite(item) for item in value)
    if isinstance(value, Mapping):
        return any(not_finite(item) for item in value.values())
    return False
