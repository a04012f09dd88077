"""``load_mapping``: the mapping a connector uses, from its description or the built-in one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .builtin import builtin_mapping
from .compile import compile_mapping
from .record_mapping import RecordMapping


def load_mapping(
    description: Mapping[str, Any] | None, *, where: str, default_timezone: str = "UTC"
) -> RecordMapping:
    """The mapping a description states (None: the built-in one, today's client format).
    Raises ``ConfigurationError`` starting with ``where`` and listing every problem."""
    if description is None:
        return builtin_mapping(default_timezone)
    return compile_mapping(description, where=where, default_timezone=default_timezone)
