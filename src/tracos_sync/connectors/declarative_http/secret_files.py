"""Secrets in mounted files (``file:/run/secrets/erp-token``): read at start-up, and read again
whenever the file changes, so that a token or passphrase rotated by Kubernetes or systemd is used
by a running ``watch`` without a restart.

A change is told by the file's identity and modification time (``os.stat`` follows the symbolic
link Kubernetes swaps on rotation: a new target is a new inode), checked each time the secret is
used: a ``stat`` per request, nothing read unless it changed. A file that cannot be read at
start-up is a configuration error naming the key; one that cannot be read later (a rotation half
done, a volume briefly gone) keeps the value last read and says so once, in a warning that names
the file and never the value.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from pathlib import Path

import structlog
from pydantic import SecretStr

from tracos_sync.secret_text import SecretUnreadable, read_secret_text

log = structlog.get_logger("tracos_sync.http")

PREFIX = "file:"
REMEMBERED = 8  # values read lately: a log line may still quote an old one; never shown

Check = Callable[[str], str]


def _as_is(value: str) -> str:
    return value


class SecretFile(SecretStr):
    """A secret whose value is the content of a file (whitespace around it dropped: the newline
    an editor or ``echo`` leaves), read again when the file changes. A ``SecretStr``, so that a
    description's secret fields take either; ``check`` validates every value read."""

    def __init__(self, path: Path, check: Check = _as_is) -> None:
        self.path = path
        self._check = check
        self._seen: tuple[int, int, int] | None = None
        self._said: tuple[object] | None = None  # the state of the file last warned about
        self._read: deque[str] = deque(maxlen=REMEMBERED)
        value = self._load(self._identity())
        super().__init__(value)

    def with_check(self, check: Check) -> SecretFile:
        """The same file, each value it holds also passed through ``check`` (validated now)."""
        return SecretFile(self.path, lambda value: check(self._check(value)))

    def get_secret_value(self) -> str:
        """The file's value now: read again if it changed; the last value read if it cannot
        be read (said once per state of the file, naming the file)."""
        identity: tuple[int, int, int] | None = None
        try:
            identity = self._identity()
            if identity != self._seen:
                self._secret_value = self._load(identity)
        except ValueError as exc:
            if self._said != (identity,):
                self._said = (identity,)
                log.warning(
                    "secret.unreadable",
                    file=str(self.path),
                    error=str(exc),
                    kept="the value read before",
                )
        return self._secret_value

    def remembered(self) -> list[str]:
        """Every value read lately, for redaction (read nothing now)."""
        return list(self._read)

    def _identity(self) -> tuple[int, int, int]:
        try:
            found = os.stat(self.path)
        except OSError as exc:
            raise ValueError(f"cannot read {PREFIX}{self.path}: {exc.strerror}") from None
        return (found.st_ino, found.st_mtime_ns, found.st_size)

    def _load(self, identity: tuple[int, int, int]) -> str:
        try:
            text = read_secret_text(self.path, f"{PREFIX}{self.path}")
        except SecretUnreadable as exc:
            raise ValueError(str(exc)) from None
        value = self._check(text)
        self._seen = identity
        self._read.append(value)
        return value


def secret_values(secret: SecretStr) -> list[str]:
    """What redaction must know of ``secret``: its value, and a file's values read lately."""
    if isinstance(secret, SecretFile):
        return secret.remembered()
    return [secret.get_secret_value()]


def file_reference(value: str) -> Path | None:
    """The path of a ``file:/path`` reference, or None when ``value`` is not one."""
    if not value.startswith(PREFIX):
        return None
    return Path(value.removeprefix(PREFIX))
