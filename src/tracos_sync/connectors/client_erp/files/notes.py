"""Small durable notes about inbound files, kept under ``<inbound>/.claims/`` (a folder the client
does not read), one file per inbound file name: which files were in hand when an instance died
(suspected poison), and which did not parse while they may still have been being written.

A note names its file and the identity it had (size and mtime): a note about an earlier file of
the same name does not apply to a new one. Notes are hints shared by every instance on the
folder; a lost one (a crash while writing it) costs at most one more look."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from .durable import write_atomically


def identity(info: os.stat_result) -> list[int]:
    """What says a file is unchanged: its size and its modification time (a put back, a claim or a
    copy across file systems keeps both; any write changes one)."""
    return [info.st_size, info.st_mtime_ns]


class Notes:
    """One kind of note (``kind`` starts its files' names) in the claims folder ``root``."""

    def __init__(self, root: Path, kind: str) -> None:
        self._root = root
        self._kind = kind

    def _path(self, name: str) -> Path:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
        return self._root / f"{self._kind}-{digest}.json"

    def get(self, name: str) -> dict[str, Any] | None:
        """The note about ``name``, or None (none, or unreadable: a hint only)."""
        try:
            note = orjson.loads(self._path(name).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(note, dict) or note.get("name") != os.fsencode(name).hex():
            return None
        return note

    def put(self, name: str, fields: dict[str, Any]) -> None:
        note = {"name": os.fsencode(name).hex(), **fields}
        write_atomically(self._path(name), orjson.dumps(note))

    def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))

    def names(self) -> set[str]:
        """The file names noted (none if the folder is missing)."""
        found: set[str] = set()
        prefix = f"{self._kind}-"
        try:
            entries = list(os.scandir(self._root))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".json"):
                with contextlib.suppress(OSError, orjson.JSONDecodeError, ValueError, TypeError):
                    note = orjson.loads(Path(entry.path).read_bytes())
                    found.add(os.fsdecode(bytes.fromhex(note["name"])))
        return found
