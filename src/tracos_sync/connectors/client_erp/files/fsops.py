"""File primitives that never lose, overwrite or duplicate a file: durable writes, exclusive
creation and no-clobber moves that are atomic where the file system allows it and recoverable
where it does not."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import structlog

log = structlog.get_logger("tracos_sync.files")

TEMP_SUFFIX = ".tmp"
# mkstemp's temp names: "." + name + "." + 8 random characters + ".tmp" (see _temp_prefix).
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$", re.DOTALL)
_TEMP_OVERHEAD = 1 + 1 + 8 + len(TEMP_SUFFIX)
# A temp file this old whose lock is free has no live writer, on this host or on another one.
TEMP_STALE_SECONDS = 600.0
_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
# renameat2 is missing, or the file system does not implement RENAME_NOREPLACE.
_NO_RENAMEAT2 = (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP)
# The file system has no hard links (some network or FAT file systems).
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


class SourceChanged(OSError):
    """A file changed while it was being copied to another file system: the copy was removed,
    the file left where it was."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=64)
def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that ``folder``'s file system accepts."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def fit_name(name: str, limit: int) -> str:
    """``name`` if it is at most ``limit`` bytes, else a deterministic shorter one: its start, a
    hash of the whole name and its extension (``<start>~h<hash>.json``)."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    ext = b".json" if raw.endswith(b".json") else b""
    digest = b"~h" + hashlib.sha256(raw).hexdigest()[:12].encode()
    keep = max(limit - len(digest) - len(ext), 1)
    return os.fsdecode(raw[:keep] + digest + ext)


def free_names(name: str) -> Iterable[str]:
    """``42.json``, then ``42~1.json``, ``42~2.json``, … for archiving beside an earlier one."""
    yield name
    stem, dot, suffix = name.partition(".")
    n = 1
    while True:
        yield f"{stem}~{n}{dot}{suffix}"
        n += 1


def candidate_names(name: str, folder: Path, reserve: int = 0) -> Iterable[str]:
    """:func:`free_names`, each shortened so that ``reserve`` more bytes still fit in a name."""
    limit = name_max(folder) - reserve
    for candidate in free_names(name):
        yield fit_name(candidate, limit)


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


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


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
    fd, tmp_name = _mkstemp(target)
    tmp = Path(tmp_name)
    try:
        if stat.S_ISLNK(info.st_mode):  # a link is moved as itself
            os.unlink(tmp)
            os.symlink(os.readlink(src), tmp)
        else:
            with open(src, "rb") as source:
                while chunk := source.read(1 << 20):
                    _write_all(fd, chunk)
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
            os.fsync(fd)
        if not place_no_clobber(tmp, target):
            os.unlink(tmp)
            if not already_there(src, target):
                return False
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
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


def _mkstemp(path: Path) -> tuple[int, str]:
    """A private (0600) temp file beside ``path``, locked while its writer lives so that
    :func:`remove_stale_temps` never takes a live writer's file."""
    short = fit_name(path.name, name_max(path.parent) - _TEMP_OVERHEAD)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{short}.", suffix=TEMP_SUFFIX)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd, tmp


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` may write part of what it is given (a signal, a full pipe): go on."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_fd(fd: int, data: bytes) -> None:
    _write_all(fd, data)
    os.fsync(fd)
    os.fchmod(fd, 0o644)


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: the reader sees the old file or the new one.
    The temp file stays open (and locked) until renamed."""
    fd, tmp = _mkstemp(path)
    try:
        _write_fd(fd, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


def create_exclusively(path: Path, data: bytes) -> None:
    """Create ``path`` complete (temp, fsync, no-replace rename) or not at all; FileExistsError
    if it exists. Never replaces anything."""
    fd, tmp = _mkstemp(path)
    try:
        _write_fd(fd, data)
        if not place_no_clobber(Path(tmp), path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


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


# How long a writer waits for a folder's lock by default (LOCK_TIMEOUT_SECONDS).
LOCK_TIMEOUT_SECONDS = 10.0
# Polling a non-blocking flock: first retry soon (a neighbour's compare-and-rename takes
# milliseconds), then at most this often.
_LOCK_FIRST_RETRY = 0.002
_LOCK_MAX_RETRY = 0.05


class LockHeld(Exception):
    """A folder's lock was not had within its deadline, or the wait was abandoned (the work is
    being stopped). ``holder`` says who holds it, as far as this host can tell."""

    def __init__(self, folder: Path, holder: str, waited: float) -> None:
        super().__init__(f"{folder} is locked by {holder} (waited {waited:.1f}s)")
        self.folder = folder
        self.holder = holder
        self.waited = waited


# This process's threads take turns on a folder through a lock of their own first, which hands
# over at once; the non-blocking flock below then only ever waits for other processes (polling
# it among our own threads would leave the lock idle for the length of each backoff).
_THREAD_LOCKS: dict[Path, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _thread_lock(folder: Path) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(folder, threading.Lock())


@contextlib.contextmanager
def folder_lock(
    folder: Path,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    abandon: threading.Event | None = None,
) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` against other threads and processes of this host;
    raise ``LockHeld`` when it is not had within ``timeout`` seconds or once ``abandon`` is set.

    ``flock`` on the folder itself, so nothing is added to a folder the client reads. A fresh
    descriptor each time: flock excludes per open file description, so threads of one process
    exclude each other too. Closing the descriptor releases the lock, also when a process dies.
    Never a blocking ``flock``: a holder that is frozen (SIGSTOP, a paused container, a hung
    network file system) would keep this thread, and the process's exit, waiting forever.
    """
    started = time.monotonic()

    def give_up_now() -> bool:
        stopping = abandon is not None and abandon.is_set()
        return stopping or time.monotonic() - started >= timeout

    def held() -> LockHeld:
        return LockHeld(folder, lock_holder(folder), time.monotonic() - started)

    ours = _thread_lock(folder)
    while not ours.acquire(timeout=max(0.0, min(_LOCK_MAX_RETRY, timeout))):
        if give_up_now():
            raise held()
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            delay = _LOCK_FIRST_RETRY
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if give_up_now():
                        raise held() from None
                    pause = min(delay, max(0.0, timeout - (time.monotonic() - started)))
                    if abandon is not None:
                        abandon.wait(pause)
                    else:
                        time.sleep(pause)
                    delay = min(delay * 2, _LOCK_MAX_RETRY)
            yield
        finally:
            os.close(fd)
    finally:
        ours.release()


def lock_holder(path: Path) -> str:
    """Who holds a ``flock`` on ``path``: "pid N (command)" from /proc/locks and
    /proc/N/comm (Linux), "pid N" when its command is not visible, else "another process"."""
    try:
        info = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return "another process"
    inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF"; a waiter's line has "->".
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != inode:
            continue
        pid = fields[4]
        if not pid.isdigit() or pid == "0":  # in another pid namespace
            return "another process"
        try:
            command = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return f"pid {pid}"
        return f"pid {pid} ({command})"
    return "another process"


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
) -> bool:
    """``write_atomically``, except that the existing file is kept when ``keep(its bytes)``
    says so; returns whether ``data`` was written. ``LockHeld`` (nothing written) when the
    folder's lock is not had within ``lock_timeout`` or ``abandon`` is set: see ``folder_lock``.

    The temp file is written and fsynced first, outside any lock; only the look at the existing
    file and the rename are done under the folder's lock, so that no other writer can rename in
    between (a check without the lock could be undone by a rename that lands right after it).
    """
    fd, tmp = _mkstemp(path)
    try:
        _write_fd(fd, data)
        with folder_lock(path.parent, lock_timeout, abandon):
            existing = read_regular(path)
            if existing is not None and keep(existing):
                os.unlink(tmp)
                return False
            os.replace(tmp, path)
        return True
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
