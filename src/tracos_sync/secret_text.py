"""The text of a secret in a mounted file (``NAME_FILE``, ``file:/path``): a small regular file
of UTF-8 text. Anything else is refused before it is opened: a FIFO or a device would block the
read (start-up would hang), a large file is the wrong file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SECRET_BYTES = 65_536  # a secret file is small; a larger one is the wrong file


class SecretUnreadable(ValueError):
    """Why a secret file cannot be read; the message names the file, never its content."""


def read_secret_text(path: Path, where: str) -> str:
    """The file's text less the whitespace around it (the newline an editor or ``echo``
    leaves). Raises ``SecretUnreadable`` saying why, after the file's name (``where``)."""
    try:
        found = os.stat(path)
    except OSError as exc:
        raise SecretUnreadable(f"cannot read {where}: {exc.strerror}") from None
    if not stat.S_ISREG(found.st_mode):
        raise SecretUnreadable(
            f"{where} is not a regular file (a FIFO or a device would block the read)"
        )
    try:
        # O_NONBLOCK: swapped for a FIFO between the stat and the open, it still does not wait.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as file:
            data = file.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretUnreadable(f"cannot read {where}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretUnreadable(f"{where} is larger than {MAX_SECRET_BYTES} bytes: not a secret")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretUnreadable(f"{where} is not UTF-8 text (the value is not shown)") from None
    if not text:
        raise SecretUnreadable(f"{where} is empty")
    return text
