"""The business key (``number``) both ways: a JSON integer, or a formatted string (a prefix,
the digits zero-padded to a fixed width) read only in the one form it is written in, so that a
record read back writes the same bytes."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any

from .said import json_text

MAX_NUMBER = 2**63 - 1  # a BSON long
MAX_WIDTH = len(str(MAX_NUMBER))  # 19 digits


class KeyCodec(ABC):
    """How a client writes the work-order number."""

    @abstractmethod
    def decode(self, raw: Any) -> int:
        """The number; ``ValueError`` saying why ``raw`` is not one."""

    @abstractmethod
    def encode(self, number: int) -> Any:
        """The client's value; ``ValueError`` for a number the format cannot hold."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the client's value."""

    def lenient(self, raw: Any) -> int | None:
        try:
            return self.decode(raw)
        except ValueError:
            return None


class IntegerKey(KeyCodec):
    """A JSON integer from 1 to 2^63-1 (the schema checks the range; ``1.0`` is refused here)."""

    def decode(self, raw: Any) -> int:
        if type(raw) is not int:  # the schema takes 1.0 for an integer; we do not
            raise ValueError(f"{json_text(raw)} is not of type 'integer'")
        return raw

    def encode(self, number: int) -> int:
        return number

    def schema(self) -> dict[str, Any]:
        return {
            "description": "Business key: the TracOS work-order number (a BSON int64).",
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_NUMBER,
        }


class FormattedKey(KeyCodec):
    """``"WO-000123"``: ``prefix``, then the digits (exactly ``width`` of them, zero-padded; or,
    without a width, with no leading zero)."""

    def __init__(self, prefix: str, width: int | None) -> None:
        self._prefix = prefix
        self._width = width
        # [0-9], not \d: \d is any Unicode digit, and int() reads fullwidth "123" as 123.
        # Never zero (all zeros at a width; no leading zero without one), at most 19 digits.
        digits = (
            f"(?!0{{{width}}})[0-9]{{{width}}}" if width else f"[1-9][0-9]{{0,{MAX_WIDTH - 1}}}"
        )
        self._shape = re.compile(_escaped(prefix) + f"({digits})")
        self._said = json_text(self.example())

    def example(self) -> str:
        """The number 123 as it is written (as much of it as the width holds)."""
        return self.encode(123 % 10 ** (self._width or 3) or 1)

    def decode(self, raw: Any) -> int:
        if not isinstance(raw, str):
            raise ValueError(f"{json_text(raw)} is not a string like {self._said}")
        match = self._shape.fullmatch(raw)
        number = int(match.group(1)) if match else 0
        if not 1 <= number <= MAX_NUMBER:
            raise ValueError(f"{json_text(raw)} is not a number written like {self._said}")
        return number

    def encode(self, number: int) -> str:
        digits = f"{number:0{self._width}d}" if self._width else str(number)
        if self._width and len(digits) > self._width:
            raise ValueError(f"number {number} has more than {self._width} digits")
        return self._prefix + digits

    def schema(self) -> dict[str, Any]:
        return {
            "description": f"Business key: the TracOS work-order number written like {self._said}.",
            "type": "string",
            # ECMA-262 as well as Python: (?!\n) because Python's $ also matches before a
            # final newline, where JavaScript's (and fastjsonschema's \Z) do not.
            "pattern": f"^{self._shape.pattern}(?!\\n)$",
        }


# The characters a regular expression gives a meaning, escaped alike in Python and in ECMA-262
# with its unicode flag (which JSON Schema validators such as Ajv use): re.escape also escapes
# "-", "#" and spaces, which JavaScript refuses there ("Invalid escape").
_SPECIAL = frozenset("\\^$.|?*+()[]{}/")


def _escaped(text: str) -> str:
    return "".join(f"\\{char}" if char in _SPECIAL else char for char in text)
