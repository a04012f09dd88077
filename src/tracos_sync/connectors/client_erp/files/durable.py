"""Durable writes that never lose or half-write a file: atomic replace, exclusive creation, and a
replace that keeps the existing file when it says so (under the folder's lock)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from .folder_lock import LOCK_TIMEOUT_SECONDS, folder_lock
from .moves import place_no_clobber
from .temps import private_temp, temp_beside, write_all


def _write_fd(fd: int, data: bytes) -> None:
    write_all(fd, data)
    os.fsync(fd)
    os.fchmod(fd, 0o644)


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: the reader sees the old file or the new one.
    The temp file stays open (and locked) until renamed."""
    with temp_beside(path) as (fd, tmp):
        _write_fd(fd, data)
        os.replace(tmp, path)


def create_exclusively(path: Path, data: bytes) -> None:
    """Create ``path`` complete (temp, fsync, no-replace rename) or not at all; FileExistsError
    if it exists. Never replaces anything."""
    fd, tmp = private_temp(path)
    try:
        _write_fd(fd, data)
        if not place_no_clobber(Path(tmp), path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` when it is a regular file; ``None`` when it is absent, a symlink
    (never followed) or anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, IsADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symlink
            return None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read()


def write_atomically_unless(
    path: Path,
    data: bytes,
    keep: Callable[[bytes], bool],
    *,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    abandon: threading.Event | None = None,
    given_up: threading.Event | None = None,
) -> bool:
    """``write_atomically``, except that the existing file is kept when ``keep(its bytes)``
    says so; returns whether ``data`` was written. ``LockHeld`` (nothing written) when the
    folder's lock is not had within ``lock_timeout`` or ``abandon`` is set, or at once while
    ``given_up`` is set: see ``folder_lock``.

    The temp file is written and fsynced first, outside any lock; only the look at the existing
    file and the rename are done under the folder's lock, so that no other writer can rename in
    between (a check without the lock could be undone by a rename that lands right after it).
    """
    with temp_beside(path) as (fd, tmp):
        _write_fd(fd, data)
        with folder_lock(path.parent, lock_timeout, abandon, given_up):
            existing = read_regular(path)
            if existing is not None and keep(existing):
                os.unlink(tmp)
                return False
            os.replace(tmp, path)
        return True
