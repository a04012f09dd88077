"""``FileStore`` on this host's file system: what the folder connector does to its folders
(exclusive creates and atomic replaces through a flushed private temp file, moves by
``renameat2(RENAME_NOREPLACE)`` or link-then-unlink), run in threads."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path, PurePosixPath

from .durable import create_exclusively, write_atomically
from .moves import place_no_clobber
from .store import Entry, kind_of


def _entry(name: str, info: os.stat_result) -> Entry:
    return Entry(name, info.st_size, info.st_mtime, kind_of(info.st_mode))


def _scan(folder: Path) -> list[Entry]:
    entries = []
    with os.scandir(folder) as found:
        for item in found:
            try:
                entries.append(_entry(item.name, item.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # gone between the listing and the look
    return entries


def _read(path: Path, max_bytes: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return handle.read(max_bytes + 1)


def _read_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _read_listed(path: Path, listed: Entry) -> tuple[bytes, Entry]:
    before = _entry(path.name, os.lstat(path))
    if (before.kind, before.size, before.mtime) != ("file", listed.size, listed.mtime):
        return b"", before  # not the file listed: never opened
    data = _read(path, listed.size)[: listed.size]
    return data, _entry(path.name, os.lstat(path))


def _move_no_clobber(source: Path, target: Path) -> None:
    if not source.exists() and not source.is_symlink():
        raise FileNotFoundError(2, "No such file or directory", str(source))
    if not place_no_clobber(source, target):
        raise FileExistsError(17, "File exists", str(target))


def _touch(path: Path) -> float:
    os.utime(path)
    return os.lstat(path).st_mtime


class LocalStore:
    """``FileStore`` over local (or mounted) folders."""

    def describe(self) -> str:
        return "local folders"

    async def scan(self, folder: PurePosixPath) -> list[Entry]:
        return await asyncio.to_thread(_scan, Path(folder))

    async def stat(self, path: PurePosixPath) -> Entry:
        info = await asyncio.to_thread(os.lstat, path)
        return _entry(path.name, info)

    async def read(self, path: PurePosixPath, max_bytes: int) -> bytes:
        return await asyncio.to_thread(_read, Path(path), max_bytes)

    async def read_listed(self, path: PurePosixPath, listed: Entry) -> tuple[bytes, Entry]:
        return await asyncio.to_thread(_read_listed, Path(path), listed)

    async def read_at(self, path: PurePosixPath, offset: int, size: int) -> bytes:
        return await asyncio.to_thread(_read_at, Path(path), offset, size)

    async def create_exclusive(self, path: PurePosixPath, data: bytes) -> None:
        await asyncio.to_thread(create_exclusively, Path(path), data)

    async def write_atomic(self, path: PurePosixPath, data: bytes) -> None:
        await asyncio.to_thread(write_atomically, Path(path), data)

    async def move_no_clobber(self, source: PurePosixPath, target: PurePosixPath) -> None:
        await asyncio.to_thread(_move_no_clobber, Path(source), Path(target))

    async def unlink(self, path: PurePosixPath) -> None:
        await asyncio.to_thread(os.unlink, path)

    async def mkdir(self, path: PurePosixPath) -> None:
        await asyncio.to_thread(Path(path).mkdir, parents=True, exist_ok=True)

    async def rmdir(self, path: PurePosixPath) -> None:
        await asyncio.to_thread(os.rmdir, path)

    async def touch(self, path: PurePosixPath) -> float:
        return await asyncio.to_thread(_touch, Path(path))

    async def missing_extensions(self, folder: PurePosixPath) -> list[str]:
        return []  # rename(2) and fsync(2) are always there

    async def close(self) -> None:
        return None
