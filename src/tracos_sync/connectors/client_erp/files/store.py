"""The file-store port: what the folder transports need of a place that holds files, whether a
local folder (``LocalStore``) or a folder on an SFTP server (``sftp.store.SftpStore``).

Paths are ``PurePosixPath``; names are ``str`` (bytes that are not UTF-8 as surrogate escapes,
as ``os.fsdecode`` gives them). Failures are the standard ``OSError`` kinds, so that callers
decide per file as they do for a local folder: ``FileNotFoundError`` (gone: another instance
took it), ``FileExistsError`` (a no-replace move or exclusive create found the name taken),
``PermissionError`` (this one file or folder), any other ``OSError`` (the store's own failure,
a full disk say). ``StoreUnavailable`` is a store that could not be reached for the whole retry
budget; ``StoreRefused`` one that must not be used (its identity not proven, our credentials
refused, an operation the guarantees need missing)."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, Protocol

from tracos_sync.domain.errors import DestinationUnwritable

Kind = Literal["file", "folder", "link", "other"]


def kind_of(mode: int | None) -> Kind:
    """The kind of an entry from its POSIX mode bits (``st_mode``, SFTP's permissions);
    unknown without them."""
    if mode is None:
        return "other"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a folder, as ``lstat`` sees it (a link is not followed)."""

    name: str
    size: int
    mtime: float
    kind: Kind


class StoreUnavailable(OSError):
    """The store could not be reached, or kept dropping, for the whole retry budget."""

    def __str__(self) -> str:
        # The message names the cause: an "[Errno N]" before it would only repeat it.
        return self.strerror or super().__str__()


class StoreRefused(DestinationUnwritable):
    """The store must not be used: its host key is not the known one, our credentials were
    refused, or it lacks an operation the guarantees rest on. Fatal to the direction (exit 1),
    never retried."""


class FileStore(Protocol):
    """A place holding folders of files, reached by async operations."""

    def describe(self) -> str:
        """Where it is, for people (no secrets)."""

    async def scan(self, folder: PurePosixPath) -> list[Entry]:
        """The entries directly in ``folder`` (not ``.`` and ``..``)."""

    async def stat(self, path: PurePosixPath) -> Entry:
        """``path`` itself (a link is not followed)."""

    async def read(self, path: PurePosixPath, max_bytes: int) -> bytes:
        """The bytes of the regular file ``path``, at most ``max_bytes + 1`` of them (more than
        ``max_bytes`` says it is too large). A link is refused (``OSError``)."""

    async def read_listed(self, path: PurePosixPath, listed: Entry) -> tuple[bytes, Entry]:
        """The bytes of ``path``, which a listing showed as the regular file ``listed`` (its
        ``listed.size`` bytes, in as few requests as the store allows), and ``path`` as it is once
        they are read (a link not followed; or the file read, looked at once read). The caller
        compares the two: a size, time or kind
        unlike ``listed``'s says the file was written to or replaced meanwhile, and its bytes
        are not to be used. ``FileNotFoundError`` if it is gone.

        A name that is no longer the file listed (a link, a FIFO, another size) is looked at,
        never opened (an SFTP server's open of a FIFO would wait for ever): no bytes, and the
        look shows what it is."""

    async def read_at(self, path: PurePosixPath, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of the file ``path`` from ``offset`` (fewer at its end, none past
        it): a large file read a piece at a time, each piece on its own (tried again on a new
        connection if one drops). ``FileNotFoundError`` if it is gone."""

    async def create_exclusive(self, path: PurePosixPath, data: bytes) -> None:
        """``path`` holding ``data``, complete and durable before it has its name (a private
        temp name, flushed, then moved without replacing). ``FileExistsError`` if taken."""

    async def write_atomic(self, path: PurePosixPath, data: bytes) -> None:
        """``path`` replaced by ``data`` in one step: a reader sees the old bytes or the new,
        never part of them (a private temp name, flushed, then renamed over ``path``)."""

    async def move_no_clobber(self, source: PurePosixPath, target: PurePosixPath) -> None:
        """Move ``source`` to ``target`` in one step, never replacing: ``FileExistsError`` if
        ``target`` is taken, ``FileNotFoundError`` if ``source`` is gone."""

    async def unlink(self, path: PurePosixPath) -> None: ...

    async def mkdir(self, path: PurePosixPath) -> None:
        """``path`` and its missing parents; an existing folder is fine."""

    async def rmdir(self, path: PurePosixPath) -> None: ...

    async def touch(self, path: PurePosixPath) -> float:
        """Set the folder ``path``'s modification time to the store's own now (a claim
        folder's heartbeat), and return it: the SFTP server's clock, not this host's."""

    async def missing_extensions(self, folder: PurePosixPath) -> list[str]:
        """What the guarantees rest on that this store lacks (``posix-rename@openssh.com``,
        ``fsync@openssh.com``), found by using it on a probe file in ``folder``."""

    async def close(self) -> None: ...
