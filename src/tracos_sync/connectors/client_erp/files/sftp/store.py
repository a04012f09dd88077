"""``FileStore`` on an SFTP server (asyncssh): one connection, reused by every operation and
re-opened when it drops, within a retry budget.

What each operation relies on (OpenSSH's sftp-server; other servers are checked at start-up):
- a move that never replaces: the protocol's own rename (OpenSSH: link, then unlink the source;
  a plain rename where links are not supported, after checking the target is free);
- an atomic replace (outbound files only): ``posix-rename@openssh.com`` (rename(2));
- durability: ``fsync@openssh.com`` on the written file before it is renamed.

An operation cut by a dropped connection is tried again on a new one, up to the budget; a move
tried again that finds its source gone and its target there counts as done (a folder of ours)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import TypeVar

import asyncssh
import structlog

from ..store import Entry, StoreUnavailable, kind_of
from .answers import FSYNC, TRANSIENT, entry_of, os_error
from .connecting import Session, connect
from .location import Server
from .lost import opened, unless_lost
from .requests import (
    holds,
    probe_extensions,
    read_listed,
    rename_no_clobber,
    server_now,
    write_temp,
)
from .trust import Credentials

log = structlog.get_logger("tracos_sync.files.sftp")

T = TypeVar("T")


def _go() -> None:
    """The default ``before_replace``: nothing stops the rename."""


def _reason(exc: BaseException) -> str:
    """What went wrong, in words (``str(TimeoutError())`` is empty)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _errno_of(exc: BaseException) -> int:
    """The failure's own errno, or its cause's; a timeout is ``ETIMEDOUT``, a dropped
    connection ``ECONNRESET``."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            return cause.errno
        cause = cause.__cause__
    return errno.ETIMEDOUT if isinstance(exc, TimeoutError) else errno.ECONNRESET


class SftpStore:
    """``FileStore`` over one SFTP connection."""

    def __init__(
        self,
        server: Server,
        credentials: Credentials,
        retry_seconds: float = 30.0,
        request_seconds: float = 60.0,
    ) -> None:
        self._server = server
        self._credentials = credentials
        self._retry_seconds = retry_seconds
        self._request_seconds = request_seconds
        self._current: Session | None = None
        self._connecting = asyncio.Lock()
        self.connections = 0  # opened so far (a reconnect counts)
        self._said_no_fsync = False  # set once a write found the server without fsync@openssh.com
        # Set once an outage is said; cleared by the next operation that succeeds. Every
        # operation in flight meets the same outage: it is said once, not once each.
        self._said_outage = False

    def describe(self) -> str:
        return str(self._server)

    async def _session(self) -> Session:
        async with self._connecting:
            if self._current is None:
                self._current = await connect(self._server, self._credentials)
                self.connections += 1
            return self._current

    def _drop(self, session: Session | None) -> None:
        """Close ``session`` if it is still the current one (a newer one, opened by another
        operation meanwhile, is left alone)."""
        if session is not None and session is self._current:
            session.conn.close()
            self._current = None

    async def _call(
        self, path: PurePosixPath, operation: Callable[[asyncssh.SFTPClient, bool], Awaitable[T]]
    ) -> T:
        """``operation(client, retried)`` on the connection, re-opened and tried again while it
        drops; SFTP statuses as ``OSError``. The budget counts from the first failure, not from
        the first try: that try may have waited ``SFTP_REQUEST_SECONDS`` (or the keepalive's
        minute) on a connection dead meanwhile, and a failure on a connection is always followed
        by a try on a new one."""
        started = time.monotonic()
        deadline: float | None = None  # the budget's end, set by the first failure
        delay = 0.1
        tries = 0
        last: BaseException
        while True:
            tries += 1
            session = None
            request: asyncio.Timeout | None = None
            try:
                session = await self._session()
                # A server that stops answering on a live connection is a dead connection.
                async with asyncio.timeout(self._request_seconds) as request:
                    result = await unless_lost(operation(session.sftp, tries > 1), session.lost)
                self._said_outage = False
                return result
            except TimeoutError as exc:
                if request is None or not request.expired():  # connecting timed out
                    last = exc
                else:
                    late = f"no answer within SFTP_REQUEST_SECONDS={self._request_seconds:g}"
                    last = TimeoutError(errno.ETIMEDOUT, late)
                    last.__cause__ = exc
            except asyncssh.SFTPError as exc:
                if isinstance(exc, TRANSIENT):
                    last = exc
                else:
                    self._said_outage = False  # the server answered
                    raise os_error(exc, path) from exc
            except TRANSIENT as exc:
                last = exc
            self._drop(session)
            now = time.monotonic()
            owed = deadline is None and session is not None  # a new connection not tried yet
            if deadline is None:
                deadline = now + self._retry_seconds
            if not owed and now >= deadline:
                raise StoreUnavailable(
                    _errno_of(last),
                    f"{self._server}: no working connection for {now - started:.1f}s "
                    f"({tries} {'try' if tries == 1 else 'tries'}): {_reason(last)}",
                ) from last
            if not self._said_outage:
                self._said_outage = True
                log.warning("sftp.reconnecting", server=str(self._server), reason=_reason(last))
            # The last try at the budget's end, not a sleep's length before it.
            await asyncio.sleep(delay if owed else min(delay, deadline - now))
            delay = min(delay * 2, 2.0)

    async def connect(self) -> None:
        """Open the connection now (start-up checks), within the budget."""

        async def nothing(_: asyncssh.SFTPClient, __: bool) -> None:
            return None

        await self._call(PurePosixPath("/"), nothing)

    async def scan(self, folder: PurePosixPath) -> list[Entry]:
        async def scan(sftp: asyncssh.SFTPClient, _: bool) -> list[Entry]:
            return [
                entry_of(str(name.filename), name.attrs)
                for name in await sftp.readdir(str(folder))
                if name.filename not in {".", ".."}
            ]

        return await self._call(folder, scan)

    async def stat(self, path: PurePosixPath) -> Entry:
        async def lstat(sftp: asyncssh.SFTPClient, _: bool) -> Entry:
            return entry_of(path.name, await sftp.lstat(str(path)))

        return await self._call(path, lstat)

    async def read(self, path: PurePosixPath, max_bytes: int) -> bytes:
        async def read(sftp: asyncssh.SFTPClient, _: bool) -> bytes:
            attrs = await sftp.lstat(str(path))
            if kind_of(attrs.permissions) != "file":
                raise OSError(errno.ELOOP, "not a regular file (links are not followed)", path)
            # As many bytes as it holds, and one more to see it grew: asyncssh splits a large
            # read into parallel requests, and one as large as the cap would send a hundred
            # for a small file.
            want = min(attrs.size or 0, max_bytes) + 1
            async with opened(sftp, str(path), "rb") as remote:
                data = await remote.read(want)
            assert isinstance(data, bytes)  # opened in binary mode
            return data

        return await self._call(path, read)

    async def read_listed(self, path: PurePosixPath, listed: Entry) -> tuple[bytes, Entry]:
        return await self._call(path, lambda sftp, _: read_listed(sftp, path, listed))

    async def read_at(self, path: PurePosixPath, offset: int, size: int) -> bytes:
        async def read(sftp: asyncssh.SFTPClient, _: bool) -> bytes:
            # Opened for each piece: a piece cut by a drop is read again on a new connection.
            async with opened(sftp, str(path), "rb") as remote:
                data = await remote.read(size, offset)
            assert isinstance(data, bytes)  # opened in binary mode
            return data

        return await self._call(path, read)

    async def create_exclusive(self, path: PurePosixPath, data: bytes) -> None:
        async def create(sftp: asyncssh.SFTPClient, retried: bool) -> None:
            temp = await write_temp(sftp, path, data)
            try:
                await sftp.rename(str(temp), str(path))
            except asyncssh.SFTPError as exc:
                with contextlib.suppress(asyncssh.Error, OSError):
                    await sftp.remove(str(temp))
                if not isinstance(exc, TRANSIENT) and await sftp.exists(str(path)):
                    if retried and await holds(sftp, path, data):
                        return  # the try cut by the drop had landed
                    raise FileExistsError(errno.EEXIST, "File exists", str(path)) from exc
                raise

        await self._call(path, create)

    async def write_atomic(
        self,
        path: PurePosixPath,
        data: bytes,
        before_replace: Callable[[], None] = _go,
        temps: PurePosixPath | None = None,
    ) -> None:
        """``before_replace`` is called right before the rename is sent, and may stop it by
        raising (the temp file is then removed); ``temps``: the folder the temp file is written
        in (the outbound lock's: a rename from a lock folder moved away finds no file). Both
        for the outbound lock."""

        async def write(sftp: asyncssh.SFTPClient, _: bool) -> None:
            temp = await write_temp(sftp, path, data, temps)
            try:
                before_replace()
                await sftp.posix_rename(str(temp), str(path))
            except BaseException as exc:
                with contextlib.suppress(asyncssh.Error, OSError):
                    await sftp.remove(str(temp))
                if isinstance(exc, asyncssh.SFTPFailure) and await sftp.isdir(str(path)):
                    # The name is taken by a folder: this file's failure, not the store's.
                    raise IsADirectoryError(
                        errno.EISDIR, "a folder has this name", str(path)
                    ) from exc
                raise

        await self._call(path, write)

    async def move_no_clobber(self, source: PurePosixPath, target: PurePosixPath) -> None:
        async def move(sftp: asyncssh.SFTPClient, retried: bool) -> None:
            await rename_no_clobber(sftp, source, target, retried)

        await self._call(source, move)

    async def unlink(self, path: PurePosixPath) -> None:
        async def unlink(sftp: asyncssh.SFTPClient, retried: bool) -> None:
            try:
                await sftp.remove(str(path))
            except asyncssh.SFTPNoSuchFile:
                if not retried:
                    raise

        await self._call(path, unlink)

    async def make_folder(self, path: PurePosixPath) -> None:
        """The folder ``path``, made by this call: ``FileExistsError`` when the name is taken."""

        async def make(sftp: asyncssh.SFTPClient, _: bool) -> None:
            try:
                await sftp.mkdir(str(path))
            except asyncssh.SFTPError as exc:
                if isinstance(exc, TRANSIENT) or not await sftp.lexists(str(path)):
                    raise
                # Also when a try cut by a drop had made it: whose it is cannot be told.
                raise FileExistsError(errno.EEXIST, "File exists", str(path)) from exc

        await self._call(path, make)

    async def overwrite(self, path: PurePosixPath, data: bytes) -> None:
        """``data`` written over the start of the existing file ``path`` (never created:
        ``FileNotFoundError`` when gone): its time becomes the server's now (a ``touch`` sends
        this host's clock)."""

        async def overwrite(sftp: asyncssh.SFTPClient, _: bool) -> None:
            async with opened(sftp, str(path), "r+b") as remote:
                await remote.write(data, 0)

        await self._call(path, overwrite)

    async def mkdir(self, path: PurePosixPath) -> None:
        async def mkdir(sftp: asyncssh.SFTPClient, _: bool) -> None:
            await sftp.makedirs(str(path), exist_ok=True)

        await self._call(path, mkdir)

    async def rmdir(self, path: PurePosixPath) -> None:
        async def rmdir(sftp: asyncssh.SFTPClient, _: bool) -> None:
            await sftp.rmdir(str(path))

        await self._call(path, rmdir)

    async def touch(self, path: PurePosixPath) -> float:
        async def touch(sftp: asyncssh.SFTPClient, _: bool) -> float:
            # Not utime(): asyncssh sends this host's clock; an entry made and removed in the
            # folder gives it the server's own now.
            return await server_now(sftp, path)

        return await self._call(path, touch)

    async def missing_extensions(self, folder: PurePosixPath) -> list[str]:
        """The OpenSSH extensions the guarantees use that this server lacks, found by using
        them on a probe file in ``folder`` (removed after)."""
        missing: list[str] = []

        async def probe(sftp: asyncssh.SFTPClient, _: bool) -> None:
            missing[:] = await probe_extensions(sftp, folder)

        await self._call(folder, probe)
        if FSYNC in missing and not self._said_no_fsync:  # degraded, said once
            self._said_no_fsync = True
            log.warning(
                "sftp.no_fsync",
                server=str(self._server),
                reason=f"the server offers no {FSYNC}: a file it acknowledged may be lost if "
                "the server itself crashes before writing it out (work orders are marked "
                "synced, and client files archived, on its acknowledgement)",
            )
        return missing

    async def close(self) -> None:
        session = self._current
        self._drop(session)
        if session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.conn.wait_closed(), 5)
