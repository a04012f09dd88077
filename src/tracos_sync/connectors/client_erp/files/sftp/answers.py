"""SFTP's answers in the terms of a local folder: attributes as ``Entry``, statuses as the
``OSError`` a local folder would raise; and the private temp names writes go through."""

from __future__ import annotations

import errno
import secrets
from pathlib import PurePosixPath

import asyncssh

from ..store import Entry, kind_of

# The OpenSSH extensions the guarantees rest on.
POSIX_RENAME = "posix-rename@openssh.com"
FSYNC = "fsync@openssh.com"
TEMP_PREFIX = ".tracos-"
TEMP_SUFFIX = ".tmp"
# Dropped connections and servers that cannot be reached: tried again within the budget.
TRANSIENT = (
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncssh.ConnectionLost,
    asyncssh.ServiceNotAvailable,
    asyncssh.ChannelOpenError,
    ConnectionError,
    TimeoutError,
    EOFError,
)


def entry_of(name: str, attrs: asyncssh.SFTPAttrs) -> Entry:
    return Entry(name, attrs.size or 0, float(attrs.mtime or 0), kind_of(attrs.permissions))


def temp_name(path: PurePosixPath) -> PurePosixPath:
    return path.with_name(f"{TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def is_temp(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def os_error(exc: asyncssh.SFTPError, path: PurePosixPath) -> OSError:
    """The SFTP status as the ``OSError`` a local folder would raise."""
    where = str(path)
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return FileNotFoundError(errno.ENOENT, exc.reason or "No such file", where)
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return PermissionError(errno.EACCES, exc.reason or "Permission denied", where)
    if isinstance(exc, asyncssh.SFTPFileAlreadyExists):
        return FileExistsError(errno.EEXIST, exc.reason or "File exists", where)
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem | asyncssh.SFTPQuotaExceeded):
        return OSError(errno.ENOSPC, exc.reason or "No space left on device", where)
    return OSError(errno.EIO, f"the SFTP server said: {exc.reason or exc}", where)
