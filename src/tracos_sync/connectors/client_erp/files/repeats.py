"""Warnings about inbound files, de-duplicated per inbound folder: a file watch looks at every few
milliseconds would otherwise be said at every look."""

from __future__ import annotations

import os
import time
from pathlib import Path

import structlog

log = structlog.get_logger("tracos_sync.files")


class Repeats:
    """Warnings about one file said again at most once a minute, for the same reason: a file
    that cannot be read, under a flow that watch follows every few milliseconds, would
    otherwise be said hundreds of times (repeats go to DEBUG). One per inbound folder: two
    integrations' ``1.json`` are two files."""

    EVERY_SECONDS = 60.0
    REMEMBERED = 10_000

    def __init__(self, folder: str = "") -> None:
        self._folder = folder
        self._last: dict[tuple[str, str, str], float] = {}
        self._once: set[tuple[str, str, str]] = set()

    def warn(self, event: str, name: str, reason: str, level: str = "warning") -> None:
        key, now = (event, name, reason), time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.EVERY_SECONDS:
            log.debug(event, file=name, reason=reason, repeated=True)
            return
        if len(self._last) >= self.REMEMBERED:
            self._last.clear()
        self._last[key] = now
        if level == "info":
            log.info(event, file=name, reason=reason)
        else:
            log.warning(event, file=name, reason=reason)

    def once(self, event: str, name: str, what: str, **fields: object) -> None:
        """Said once per file (``what`` tells one version of it from another)."""
        key = (event, name, what)
        if key in self._once:
            return
        if len(self._once) >= self.REMEMBERED:
            self._once.clear()
        self._once.add(key)
        log.warning(event, file=name, **fields)


_said_by_folder: dict[str, Repeats] = {}


def said_in(folder: Path) -> Repeats:
    """The warning memory of one inbound folder."""
    key = os.path.abspath(folder)
    said = _said_by_folder.get(key)
    if said is None:
        said = _said_by_folder[key] = Repeats(key)
    return said
