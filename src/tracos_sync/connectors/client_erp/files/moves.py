"""No-clobber moves: a file is moved (renameat2 RENAME_NOREPLACE, else a hard link then unlink,
else a copy across file systems) but never over another file, and a kill at any instant leaves
it recoverable: a retry finishes the move instead of making a second copy."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from pathlib import Path

from .fsnames import candidate_names
from .temps import fsync_dir, same_file, temp_beside, write_all

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
# renameat2 is missing, or the file system does not implement RENAME_NOREPLACE.
_NO_RENAMEAT2 = (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP)
# The file system has no hard links (some network or FAT file systems).
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


class SourceChanged(OSError):
    """A file changed while it was being copied to another file system: the copy was removed,
    the file left where it was."""


def _renameat2_noreplace() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not glibc >= 2.28
        return None
    int_, path = ctypes.c_int, ctypes.c_char_p
    function.argtypes = [int_, path, int_, path, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _renameat2_noreplace()


def _rename_noreplace(src: Path, target: Path) -> bool:
    """Rename atomically unless ``target`` exists (FileExistsError); False when unsupported."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE):
        code = ctypes.get_errno()
        if code in _NO_RENAMEAT2:
            return False
        raise OSError(code, os.strerror(code), str(src), None, str(target))
    return True


def already_there(src: Path, target: Path) -> bool:
    """``target`` is ``src`` already: a move half done by a killed process (link made, source not
    yet unlinked), or a cross-device copy finished but its source not yet removed."""
    try:
        a, b = os.stat(src, follow_symlinks=False), os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if same_file(a, b):
        return True
    if a.st_dev == b.st_dev or not (stat.S_ISREG(a.st_mode) and stat.S_ISREG(b.st_mode)):
        return False
    if (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns):  # a copy keeps both
        return False
    return src.read_bytes() == target.read_bytes()


def _unlink_moved(src: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # another recoverer finished the same move
        os.unlink(src)


def place_no_clobber(src: Path, target: Path) -> bool:
    """Move ``src`` to ``target`` unless ``target`` holds another file (then False). Never
    overwrites; a kill at any instant leaves ``src`` and/or ``target``, and a retry finishes the
    move instead of making a second copy."""
    try:
        if _rename_noreplace(src, target):
            return True
        os.link(src, target, follow_symlinks=False)  # fails atomically when target exists
    except FileExistsError:
        if not already_there(src, target):
            return False
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            return _copy_across(src, target)
        if exc.errno not in _NO_LINKS:
            raise
        # No hard links and no renameat2: check, then rename (the only non-atomic path).
        if os.path.lexists(target):
            if not already_there(src, target):
                return False
        else:
            os.rename(src, target)
            return True
    _unlink_moved(src)
    return True


def move_no_clobber(src: Path, dst_dir: Path, name: str, reserve: int = 0) -> Path:
    """Move ``src`` into ``dst_dir`` under ``name`` or the first free variant (shortened to fit
    with ``reserve`` bytes to spare); never overwrites. Links are not followed: a symlink is
    moved as itself."""
    for candidate in candidate_names(name, dst_dir, reserve):
        target = dst_dir / candidate
        if place_no_clobber(src, target):
            return target
    raise AssertionError("unreachable")  # pragma: no cover


def _copy_across(src: Path, target: Path) -> bool:
    """Another file system: copy to a private temp name beside ``target``, fsync, rename it into
    place without replacing, then remove the source. A kill leaves the source (and maybe the
    complete copy, recognised by :func:`already_there` on retry), never a partial target. The
    temp file stays open (locked) until renamed: it carries the source's old date.

    The source is removed only if it is unchanged (same file, size and mtime) since it was
    copied; else the copy is removed and ``SourceChanged`` raised: a writer still writing the
    file must not lose what it writes after the copy."""
    info = os.stat(src, follow_symlinks=False)
    with temp_beside(target) as (fd, tmp):
        if stat.S_ISLNK(info.st_mode):  # a link is moved as itself
            os.unlink(tmp)
            os.symlink(os.readlink(src), tmp)
        else:
            with open(src, "rb") as source:
                while chunk := source.read(1 << 20):
                    write_all(fd, chunk)
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.fsync(fd)
        if not place_no_clobber(tmp, target):
            os.unlink(tmp)
            if not already_there(src, target):
                return False
        fsync_dir(target.parent)
    if not _unchanged(src, info):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        raise SourceChanged(errno.EAGAIN, "changed while it was copied; left in place", str(src))
    _unlink_moved(src)
    return True


def _unchanged(path: Path, before: os.stat_result) -> bool:
    """``path`` is still the file ``before`` describes, with the same size and mtime (a link is
    compared as itself)."""
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return True  # another recoverer finished the same move
    return same_file(now, before) and (now.st_size, now.st_mtime_ns) == (
        before.st_size,
        before.st_mtime_ns,
    )
