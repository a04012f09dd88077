"""Small notes about inbound files on the SFTP server, beside the claim folders
(``<inbound>/.tracos-claims/<kind>-<hash>.json``, where the client does not look), as
``files/notes.py`` keeps them locally: which files were in hand when an instance died (suspected
poison) and how many dead instances have been recovered (a crash's number).

A note names its file (hex of its bytes) and, for a suspect, the identity the file had (size and
the server's mtime): a note about an earlier file of the same name does not apply to a new one.
Notes are hints shared by every instance on the folder, written without ``posix-rename`` (removed,
then created whole under their name): a note lost to a kill between the two costs at most one
more crash before a poison file is quarantined."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import PurePosixPath
from typing import Any

import orjson

from ..store import Entry, FileStore, StoreUnavailable

NOTE_MAX_BYTES = 4096


def identity(entry: Entry) -> list[float]:
    """What says a file is unchanged: its size and modification time (a claim, a put back and
    an archive move keep both; any write changes one)."""
    return [entry.size, entry.mtime]


class SftpNotes:
    """One kind of note (``kind`` starts its files' names) in the folder ``root``."""

    def __init__(self, store: FileStore, root: PurePosixPath, kind: str) -> None:
        self._store = store
        self._root = root
        self._kind = kind
        # Note files read so far, by (file name, size, mtime): the name each is about. Notes
        # are read again only when they change.
        self._read: dict[tuple[str, int, float], str | None] = {}

    def _path(self, name: str) -> PurePosixPath:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
        return self._root / f"{self._kind}-{digest}.json"

    def is_note(self, entry: Entry) -> bool:
        return (
            entry.kind == "file"
            and entry.name.startswith(f"{self._kind}-")
            and entry.name.endswith(".json")
        )

    async def get(self, name: str) -> dict[str, Any] | None:
        """The note about ``name``, or ``None`` (none, or unreadable: a hint only)."""
        return _about(await self._load(self._path(name)), name)

    async def _load(self, path: PurePosixPath) -> dict[str, Any] | None:
        try:
            note = orjson.loads(await self._store.read(path, NOTE_MAX_BYTES))
        except StoreUnavailable:
            raise
        except (OSError, orjson.JSONDecodeError):
            return None
        return note if isinstance(note, dict) else None

    async def put(self, name: str, fields: dict[str, Any]) -> None:
        """Written whole under its name (another instance's note of the same name meanwhile
        wins: the same file's, written at the same recovery). ``OSError`` if it cannot be."""
        path = self._path(name)
        note = {"name": os.fsencode(name).hex(), **fields}
        with contextlib.suppress(FileNotFoundError):
            await self._store.unlink(path)
        with contextlib.suppress(FileExistsError):
            await self._store.create_exclusive(path, orjson.dumps(note))

    async def forget(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await self._store.unlink(self._path(name))

    async def names(self, listed: list[Entry]) -> set[str]:
        """The file names noted among ``listed`` (a listing of ``root``); only notes not read
        before are read."""
        found: set[str] = set()
        seen: dict[tuple[str, int, float], str | None] = {}
        for entry in listed:
            if not self.is_note(entry):
                continue
            key = (entry.name, entry.size, entry.mtime)
            if key in self._read:
                name = self._read[key]
            else:
                name = _name_of(await self._load(self._root / entry.name))
            seen[key] = name
            if name is not None:
                found.add(name)
        self._read = seen
        return found


def _name_of(note: dict[str, Any] | None) -> str | None:
    if note is None:
        return None
    with contextlib.suppress(KeyError, ValueError, TypeError):
        return os.fsdecode(bytes.fromhex(note["name"]))
    return None


def _about(note: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    return note if note is not None and note.get("name") == os.fsencode(name).hex() else None
