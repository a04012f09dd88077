"""Durable bytes: private temp files beside their target (locked while their writer lives), writes
that go on after a short write, folder fsyncs, and the removal of a killed writer's temps."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import structlog

from .fsnames import fit_name, name_max

log = structlog.get_logger("tracos_sync.files")

TEMP_SUFFIX = ".tmp"
# mkstemp's temp names: "." + name + "." + 8 random characters + ".tmp" (see private_temp).
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$", re.DOTALL)
_TEMP_OVERHEAD = 1 + 1 + 8 + len(TEMP_SUFFIX)
# A temp file this old whose lock is free has no live writer, on this host or on another one.
TEMP_STALE_SECONDS = 600.0


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_temp(path: Path) -> tuple[int, str]:
    """A private (0600) temp file beside ``path``, locked while its writer lives so that
    :func:`remove_stale_temps` never takes a live writer's file."""
    short = fit_name(path.name, name_max(path.parent) - _TEMP_OVERHEAD)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{short}.", suffix=TEMP_SUFFIX)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd, tmp


@contextlib.contextmanager
def temp_beside(path: Path) -> Iterator[tuple[int, Path]]:
    """:func:`private_temp` for a block: the temp file is removed if the block fails (what it
    did with the file otherwise is its own: renamed into place, or removed), and its
    descriptor is closed at the end (which releases its lock)."""
    fd, tmp = private_temp(path)
    try:
        yield fd, Path(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` may write part of what it is given (a signal, a full pipe): go on."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def remove_stale_temps(folder: Path, older_than: float = TEMP_STALE_SECONDS) -> int:
    """Remove our private temp files (``.<name>.<random>.tmp``) left in ``folder`` by a killed
    writer: only those untouched for ``older_than`` seconds whose lock is free (a live writer on
    this host holds it). Returns how many were removed."""
    removed = 0
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime > cutoff:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if same_file(os.fstat(fd), os.stat(entry.path, follow_symlinks=False)):
                os.unlink(entry.path)
                removed += 1
                log.info("files.stale_temp_removed", file=entry.name, folder=str(folder))
        except OSError:
            continue  # a live writer holds it, or it went away meanwhile
        finally:
            os.close(fd)
    return removed
