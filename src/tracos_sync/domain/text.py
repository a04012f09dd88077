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


def printable(text: str) -> str:
    """``text`` that any output can carry: a file name that is not valid UTF-8 reaches us with
    surrogate escapes (PEP 383), which JSON encoders and strict streams refuse; those bytes are
    shown as ``\\xNN``."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_escape(ch) for ch in text)
    return text


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate, as JSON's "\\ud800" gives
        return f"\\u{code:04x}"
    return ch
