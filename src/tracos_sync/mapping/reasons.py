"""A problem's reason, as records, logs and reason files carry it."""

from __future__ import annotations

MAX_REASON = 300


def reason(text: str) -> str:
    """A problem's reason, cut to a length a log line and a reason file can carry."""
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
