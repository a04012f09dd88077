"""Text that every system we talk to can carry."""

from __future__ import annotations


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as BSON (UTF-8), or None. JSON can carry a lone UTF-16
    surrogate (``"\\ud800"``) that no UTF-8 encoder accepts."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"text is not valid Unicode (lone surrogate at character {exc.start})"
    return None
