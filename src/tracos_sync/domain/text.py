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
    """``text`` that any output can carry safely: a file name that is not valid UTF-8 reaches us
    with surrogate escapes (PEP 383), which JSON encoders and strict streams refuse, and control
    characters (an escape sequence in a name) would drive the reader's terminal. Both are shown
    escaped: ``\\xff``, ``\\x1b``, ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
