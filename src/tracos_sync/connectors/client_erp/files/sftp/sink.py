"""Outbound to a folder on an SFTP server: ``<outbound>/<number>.json`` written under a private
temp name (in the lock folder), flushed (``fsync@openssh.com``), then renamed over the old file
(``posix-rename@openssh.com``): the client sees the old file or the new one, never a part.
Many files are in flight at once on the one connection (``SFTP_PARALLEL_FILES``).

A file the client holds that is newer than ours is kept (counted superseded). The look, the
comparison and the rename are made under the outbound folder's lock on the server
(``outbound_lock.py``; one per run or sweep, not per file), fenced at each rename: two
instances overlapping on one outbound folder never put an older version back. A lock not had
within ``LOCK_TIMEOUT_SECONDS`` defers the page (left unsynced for a later run)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import PurePosixPath

import structlog

from tracos_sync.domain.errors import DestinationUnwritable, FatalError
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import Delivery
from tracos_sync.mapping import RecordMapping

from ..folder_lock import LOCK_TIMEOUT_SECONDS
from ..sink import encoded, holds_newer_than
from ..store import StoreRefused, StoreUnavailable
from .answers import POSIX_RENAME, is_temp
from .claims import instance_name
from .outbound_lock import (
    Held,
    LockLost,
    LockTimedOut,
    OutboundLock,
    is_taken_lock,
    remove_folder,
)
from .settings import SftpFolderSettings
from .store import SftpStore

log = structlog.get_logger("tracos_sync.files.sftp")

# A temp file older than this was left by a writer that died.
TEMP_STALE_SECONDS = 600.0
# An outbound file is looked at (is the client's copy newer?) only up to this size.
LOOK_MAX_BYTES = 16 * 1024 * 1024


class SftpSink:
    """``ClientSink`` writing ``<outbound>/<number>.json`` on an SFTP server."""

    def __init__(
        self,
        store: SftpStore,
        settings: SftpFolderSettings,
        mapping: RecordMapping,
        closed: Callable[[], Awaitable[None]],
        *,
        dry_run: bool = False,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> None:
        self._closed = closed
        self._store = store
        location = settings.locations()["DATA_OUTBOUND_DIR"]
        self._outbound = location.path
        self._where = str(location)
        self._mapping = mapping
        self._dry_run = dry_run
        self._parallel = asyncio.Semaphore(settings.sftp_parallel_files)
        self._lock = OutboundLock(
            store, self._outbound, instance_name(), settings.sftp_lock_stale_seconds, lock_timeout
        )
        self._lock_stuck = False  # the last delivery was deferred whole, the lock not had

    async def prepare(self) -> None:
        if self._dry_run:
            return
        try:
            await self._store.mkdir(self._outbound)
            missing = await self._store.missing_extensions(self._outbound)
            await self._remove_stale_temps()
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            raise DestinationUnwritable(
                f"outbound folder {self._outbound} on {self._store.describe()} cannot be "
                f"used: {exc}"
            ) from exc
        if POSIX_RENAME in missing:
            raise DestinationUnwritable(
                f"{self._store.describe()} offers no posix-rename@openssh.com: an outbound file "
                "could not be replaced in one step (a client could read half a file), so "
                "nothing is written"
            ) from StoreRefused("posix-rename@openssh.com missing")

    async def _remove_stale_temps(self) -> None:
        entries = await self._store.scan(self._outbound)
        # The server's clock: the folder's time, just set by the probe file made and removed
        # in it (a quiet folder's newest file may be the leftover temp itself).
        now = (await self._store.stat(self._outbound)).mtime
        now = max([now, *(e.mtime for e in entries)])
        for entry in entries:
            if now - entry.mtime <= TEMP_STALE_SECONDS:
                continue
            if is_temp(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    await self._store.unlink(self._outbound / entry.name)
            elif is_taken_lock(entry):  # kept a while: a late second taker finds it there
                with contextlib.suppress(OSError):
                    await remove_folder(self._store, self._outbound / entry.name)

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        delivery = Delivery()
        writable = encoded(self._mapping, orders, delivery)
        if self._dry_run:
            delivery.delivered = [order.number for order, _ in writable]
            return delivery
        try:
            held = await self._lock.hold()
        except LockTimedOut as exc:
            # Not these files' fault nor the folder's: left unsynced for a later run.
            delivery.deferred = [order.number for order, _ in writable]
            if not self._lock_stuck:  # said once, not at every sweep
                delivery.deferred_because = (
                    f"the outbound folder {self._where} stayed locked by {exc.holder} "
                    f"for {exc.waited:.1f}s"
                )
            self._lock_stuck = True
            return delivery
        except OSError as exc:
            delivery.fatal = DestinationUnwritable(
                f"cannot lock {self._lock.path} on {self._store.describe()}: {exc}"
            )
            delivery.fatal.__cause__ = exc
            return delivery
        self._lock_stuck = False
        theirs: dict[int, datetime] = {}
        try:
            results = await asyncio.gather(
                *(self._write(order, data, theirs, held) for order, data in writable),
                return_exceptions=True,
            )
        finally:
            self._lock.done(held)
        errors: list[BaseException] = []
        for (order, _), result in zip(writable, results, strict=True):
            if isinstance(result, LockLost):
                # Fenced: not written, left unsynced for a later run (said once, by the lock).
                delivery.deferred.append(order.number)
                self._lock.said_lost(held)
            elif isinstance(result, StoreUnavailable):
                errors.append(result)
            elif isinstance(result, IsADirectoryError) or (
                isinstance(result, OSError) and result.errno == errno.ENAMETOOLONG
            ):
                # This one file's fault (its name is taken by a folder): it alone stays
                # unsynced; a folder we may not write (PermissionError) fails the direction.
                reason = f"cannot write {order.number}.json: {result}"
                delivery.refused.append(Problem("$", reason, order.number))
            elif isinstance(result, BaseException):
                errors.append(result)
            elif result:
                delivery.delivered.append(order.number)
            else:
                delivery.superseded.append(order.number)
                if order.number in theirs:
                    delivery.superseded_by[order.number] = theirs[order.number]
        if errors:
            first = errors[0]
            if not isinstance(first, OSError):
                raise first
            fatal: FatalError = DestinationUnwritable(
                f"cannot write to {self._outbound} on {self._store.describe()}: {first}"
                f" ({len(errors)} of {len(writable)} files failed)"
            )
            fatal.__cause__ = first
            delivery.fatal = fatal
        return delivery

    async def _write(
        self, order: WorkOrder, data: bytes, theirs: dict[int, datetime], held: Held
    ) -> bool:
        """Written (True), or kept because the client's copy is newer (False); ``LockLost``
        when the lock was no longer ours at the rename."""
        path = self._outbound / f"{order.number}.json"
        newer = holds_newer_than(
            order.updated_at, self._mapping, lambda when: theirs.__setitem__(order.number, when)
        )
        async with self._parallel:
            started = time.monotonic()
            existing = await self._existing(path)
            if existing is not None and newer(existing):
                return False

            def still_ours() -> None:
                held.check(pace=time.monotonic() - started)

            try:
                await self._store.write_atomic(
                    path, data, before_replace=still_ours, temps=self._lock.path
                )
            except FileNotFoundError as exc:
                # The temp file went with the lock folder: taken over meanwhile (a rename sent
                # before this instance froze, carried out once it ran again).
                held.lost = "another instance took it over while a rename was on its way"
                raise LockLost(held.lost) from exc
            return True

    async def _existing(self, path: PurePosixPath) -> bytes | None:
        try:
            return await self._store.read(path, LOOK_MAX_BYTES)
        except FileNotFoundError:
            return None
        except StoreUnavailable:
            raise
        except OSError:
            return None  # not a file of ours (a link, a folder): replaced, never followed

    async def close(self) -> None:
        await self._lock.close()
        await self._closed()
