"""File primitives that never lose or overwrite a file: durable writes and no-clobber moves."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_names(name: str) -> Iterable[str]:
    """``42.json``, then ``42~1.json``, ``42~2.json``, … for archiving beside an earlier one."""
    yield name
    stem, dot, suffix = name.partition(".")
    n = 1
    while True:
        yield f"{stem}~{n}{dot}{suffix}"
        n += 1


def move_no_clobber(src: Path, dst_dir: Path, name: str) -> Path:
    """Move ``src`` into ``dst_dir`` under ``name`` or the first free variant; never overwrites.

    A hard link fails atomically when the target exists, which a plain rename cannot do. Links
    are not followed, so a symlink is moved as itself.
    """
    for candidate in free_names(name):
        target = dst_dir / candidate
        try:
            os.link(src, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links here (some network or FAT file systems): check, then rename.
            if os.path.lexists(target):
                continue
            os.replace(src, target)
            return target
        os.unlink(src)
        return target
    raise AssertionError("unreachable")  # pragma: no cover


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: the reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
