"""A boolean as a client writes it: ``true``/``false``, or an encoding such as SAP's
``"X"``/``""``, ``"Y"``/``"N"`` or ``1``/``0``. Read strictly (the JSON type too: ``1`` is not
``true``, ``"1"`` is not ``1``), written as the encoding says."""

from __future__ import annotations

import json
from typing import Any

from .paths import MISSING


class FlagCodec:
    __slots__ = ("false", "plain", "true")

    def __init__(self, true: Any = True, false: Any = False) -> None:
        self.true = true
        self.false = false
        self.plain = true is True and false is False  # JSON booleans: the schema says it all

    def decode(self, raw: Any) -> bool:
        """Whether ``raw`` is the true value; ``ValueError`` for a value that is neither (absent
        is false: a required flag is the schema's to insist on)."""
        if raw is MISSING:
            return False
        if self.plain:
            return raw is True
        if type(raw) is type(self.true) and raw == self.true:
            return True
        if type(raw) is type(self.false) and raw == self.false:
            return False
        raise ValueError(f"{json.dumps(raw)[:60]} is neither {self.said()}")

    def encode(self, value: bool) -> Any:
        return self.true if value else self.false

    def said(self) -> str:
        return f"{json.dumps(self.true)} (true) nor {json.dumps(self.false)} (false)"

    def schema(self) -> dict[str, Any]:
        if self.plain:
            return {"type": "boolean"}
        return {"enum": [self.true, self.false]}
