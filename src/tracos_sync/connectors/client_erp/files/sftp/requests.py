"""The SFTP requests behind the store's writes, moves and probes, as functions of a session."""

from __future__ import annotations

import asyncio
import contextlib
import errno
from pathlib import PurePosixPath

import asyncssh

from ..store import Entry, kind_of
from .answers import FSYNC, POSIX_RENAME, TRANSIENT, entry_of, temp_name
from .lost import opened


async def write_temp(
    sftp: asyncssh.SFTPClient,
    path: PurePosixPath,
    data: bytes,
    temps: PurePosixPath | None = None,
) -> PurePosixPath:
    """``data`` under a private temp name beside ``path`` (or in ``temps``), flushed to the
    server's disk."""
    temp = temp_name(path) if temps is None else temp_name(temps / path.name)
    try:
        async with opened(sftp, str(temp), "xb", asyncssh.SFTPAttrs(permissions=0o600)) as remote:
            await remote.write(data)
            # A server without fsync@openssh.com: degraded, said once at start-up (see
            # ``probe_extensions``); its acknowledgement is all there is.
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                await remote.fsync()
            await remote.chmod(0o644)
    except BaseException:
        with contextlib.suppress(asyncssh.Error, OSError):
            await sftp.remove(str(temp))
        raise
    return temp


async def holds(sftp: asyncssh.SFTPClient, path: PurePosixPath, data: bytes) -> bool:
    """Whether ``path`` holds exactly ``data``."""
    async with opened(sftp, str(path), "rb") as remote:
        held = await remote.read(len(data) + 1)
    return isinstance(held, bytes) and held == data


async def rename_no_clobber(
    sftp: asyncssh.SFTPClient, source: PurePosixPath, target: PurePosixPath, retried: bool
) -> None:
    """``source`` renamed to ``target`` by the protocol's rename, which never replaces;
    ``retried``: the try before was cut by a dropped connection, and may have landed, whole
    (the source gone, the target there: done) or half (OpenSSH links, then unlinks: the
    unlink is finished here, never a second name)."""
    try:
        await sftp.rename(str(source), str(target))
    except asyncssh.SFTPError as exc:
        if isinstance(exc, TRANSIENT):
            raise
        if not await sftp.lexists(str(source)):
            if retried and await sftp.lexists(str(target)):
                return  # the try cut by the drop had landed
            raise FileNotFoundError(errno.ENOENT, "No such file", str(source)) from exc
        if await sftp.lexists(str(target)):
            if retried and await linked_twice(sftp, source, target):
                await sftp.remove(str(source))
                return
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from exc
        raise


async def linked_twice(
    sftp: asyncssh.SFTPClient, source: PurePosixPath, target: PurePosixPath
) -> bool:
    """Whether ``target`` is ``source`` under a second name, as OpenSSH's rename (link, then
    unlink) leaves it when cut between the two: regular files of the same size, time and bytes
    (SFTP shows no inode)."""
    a, b = await sftp.lstat(str(source)), await sftp.lstat(str(target))
    if not (kind_of(a.permissions) == kind_of(b.permissions) == "file"):
        return False
    if (a.size, a.mtime) != (b.size, b.mtime):
        return False
    async with opened(sftp, str(source), "rb") as one, opened(sftp, str(target), "rb") as other:
        size = (a.size or 0) + 1
        return bool(await one.read(size) == await other.read(size))


async def server_now(sftp: asyncssh.SFTPClient, folder: PurePosixPath) -> float:
    """The server's clock: the time of a file made (and removed) in ``folder``, which leaves
    the folder's own time at the server's now too."""
    temp = temp_name(folder / "now")
    async with opened(sftp, str(temp), "xb") as remote:
        attrs = await remote.stat()
    with contextlib.suppress(asyncssh.Error, OSError):
        await sftp.remove(str(temp))
    return float(attrs.mtime or 0)


async def probe_extensions(sftp: asyncssh.SFTPClient, folder: PurePosixPath) -> list[str]:
    """The OpenSSH extensions the guarantees use that the server lacks, found by using them on
    a probe file in ``folder`` (removed after)."""
    missing: list[str] = []
    temp = temp_name(folder / "probe")
    async with opened(sftp, str(temp), "xb") as remote:
        try:
            await remote.fsync()
        except asyncssh.SFTPOpUnsupported:
            missing.append(FSYNC)
    moved = temp_name(folder / "probe")
    try:
        await sftp.posix_rename(str(temp), str(moved))
        temp = moved
    except asyncssh.SFTPOpUnsupported:
        missing.append(POSIX_RENAME)
    finally:
        with contextlib.suppress(asyncssh.Error, OSError):
            await sftp.remove(str(temp))
    return missing


async def read_listed(
    sftp: asyncssh.SFTPClient, path: PurePosixPath, listed: Entry
) -> tuple[bytes, Entry]:
    """``FileStore.read_listed`` in requests: the file's bytes, and how it looks once read."""
    # The look first is what keeps a name swapped for a FIFO (or a link to one) from holding
    # the server's open for ever.
    before = entry_of(path.name, await sftp.lstat(str(path)))
    if (before.kind, before.size, before.mtime) != ("file", listed.size, listed.mtime):
        return b"", before  # not the file listed: never opened; the caller gives it back
    if listed.size <= sftp.limits.max_read_len:
        # Up to one server read: the read and a look at the open file sent together (the
        # server answers them in order, so the look sees the file as it was once read: one
        # written to meanwhile, even in place at the same size, shows it).
        async with opened(sftp, str(path), "rb", block_size=None) as remote:
            data, attrs = await asyncio.gather(remote.read(listed.size), remote.stat())
        assert isinstance(data, bytes)  # opened in binary mode
        return data, entry_of(path.name, attrs)
    # Larger than one read: exactly the listed size in parallel reads (one more byte would
    # cost another read to find the end), and a look after.
    async with opened(sftp, str(path), "rb") as remote:
        data = await remote.read(listed.size)
    assert isinstance(data, bytes)
    return data, entry_of(path.name, await sftp.lstat(str(path)))
