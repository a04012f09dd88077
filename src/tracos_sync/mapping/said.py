"""Values as a problem's reason shows them: in JSON's spelling (``"1"``, ``true``, ``null``), as
the client wrote them, not Python's (``'1'``, ``True``, ``None``)."""

from __future__ import annotations

import json
from typing import Any

SHOWN_CHARS = 60


def json_text(value: Any) -> str:
    """``value`` as JSON, cut to ``SHOWN_CHARS`` (a value JSON cannot write: its ``repr``)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
