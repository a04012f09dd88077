"""Outbound to a folder: ``<outbound>/<number>.json`` written atomically and durably, and never
replaced by an older version of the work order (runs may overlap: a run that read a version and
was descheduled must not put it back over the newer one another run delivered meanwhile)."""

from __future__ import annotations

import asyncio
import errno
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import orjson

from tracos_sync.domain.errors import DestinationUnwritable, FatalError, RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import Delivery
from tracos_sync.mapping import RecordMapping

from .creating import create_folder
from .durable import write_atomically_unless
from .folder_lock import LOCK_TIMEOUT_SECONDS, LockHeld
from .settings import FolderSettings
from .temps import fsync_dir, remove_stale_temps

WRITE_THREADS = 8
# Write failures that belong to one file, not to the folder: that order is refused alone.
ITS_OWN_FAILURE = frozenset({errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTEMPTY})


class FolderSink:
    """``ClientSink`` writing ``<outbound>/<number>.json`` atomically, a few files at a time
    (the per-file fsync is what costs), and the folder fsynced once per batch.

    The folder's lock is waited for at most ``lock_timeout`` seconds; a file whose lock was not
    had in time is deferred (left unsynced for a later run). Once one wait has run out, every
    other file, waiting or still to come, tries once and is deferred at once, until one gets
    the lock again: a frozen holder costs the sink one deadline, not one per file or per wave
    of writer threads."""

    def __init__(
        self,
        settings: FolderSettings,
        mapping: RecordMapping,
        dry_run: bool = False,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> None:
        self._outbound = settings.data_outbound_dir
        self._mapping = mapping
        self._dry_run = dry_run
        self._pool: ThreadPoolExecutor | None = None
        self._lock_timeout = lock_timeout
        self._lock_stuck = False  # the last delivery had its files deferred, none written
        # Set by the first lock wait that runs out, cleared by the next one that gets the lock;
        # shared by all this sink's writes (they all go to one folder): see ``folder_lock``.
        self._lock_given_up = threading.Event()

    async def prepare(self) -> None:
        if self._dry_run:
            return
        try:
            await asyncio.to_thread(create_folder, self._outbound, "DATA_OUTBOUND_DIR")
            await asyncio.to_thread(remove_stale_temps, self._outbound)  # a killed writer's
        except OSError as exc:
            raise DestinationUnwritable(
                f"outbound folder {self._outbound} cannot be created: {exc.strerror or exc}"
            ) from exc

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        delivery = Delivery()
        writable = encoded(self._mapping, orders, delivery)
        if self._dry_run:  # translate and encode everything, write nothing
            delivery.delivered = [order.number for order, _ in writable]
            return delivery
        # What each kept file held (written from the writer threads, one key per file).
        theirs: dict[int, datetime] = {}
        results = await self._write_all(writable, theirs)
        errors: list[BaseException] = []
        held: LockHeld | None = None
        for (order, _), result in zip(writable, results, strict=True):
            if isinstance(result, LockHeld):
                # Not this file's fault nor the folder's: left unsynced for a later run.
                delivery.deferred.append(order.number)
                if held is None or result.waited > held.waited:  # the wait that ran out
                    held = result
            elif isinstance(result, OSError) and result.errno in ITS_OWN_FAILURE:
                # This one file's fault (its name is taken by a folder, say): it alone stays
                # unsynced, reported; the folder takes the others.
                reason = f"cannot write {order.number}.json: {result.strerror or result}"
                delivery.refused.append(Problem("$", reason, order.number))
            elif isinstance(result, BaseException):
                errors.append(result)
            elif result:
                delivery.delivered.append(order.number)
            else:
                delivery.superseded.append(order.number)
                if order.number in theirs:
                    delivery.superseded_by[order.number] = theirs[order.number]
        if held is not None and not self._lock_stuck:  # said once, not at every sweep
            delivery.deferred_because = (
                f"the outbound folder {self._outbound} stayed locked by {held.holder} "
                f"for {held.waited:.1f}s"
            )
        # Stuck only while nothing got the lock: one file that did means it moves again.
        self._lock_stuck = held is not None and not (delivery.delivered or delivery.superseded)
        try:
            if delivery.delivered:
                await asyncio.get_running_loop().run_in_executor(
                    self._pool, fsync_dir, self._outbound
                )
        except OSError as exc:
            errors.insert(0, exc)
            delivery.delivered.clear()  # the renames may not be durable: mark nothing
        if errors:
            first = errors[0]
            if not isinstance(first, OSError):
                raise first
            where = f" ({Path(first.filename).name})" if first.filename else ""
            fatal: FatalError = DestinationUnwritable(
                f"cannot write to {self._outbound}: {first.strerror or first}{where}"
                f" ({len(errors)} of {len(writable)} files failed)"
            )
            fatal.__cause__ = first
            delivery.fatal = fatal
        return delivery

    async def _write_all(
        self, writable: list[tuple[WorkOrder, bytes]], theirs: dict[int, datetime]
    ) -> list[object]:
        """Each file written (or kept, when the client holds a newer one, whose last update goes
        in ``theirs``) by the pool: per file ``True``/``False`` (written or not) or the exception
        that stopped it."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="outbound")
        loop = asyncio.get_running_loop()
        # Set when this delivery is cancelled (a stop's grace ran out): the writer threads give
        # up their lock waits at once, so that the pool, and the process, can end.
        abandon = threading.Event()
        jobs = [
            loop.run_in_executor(
                self._pool,
                functools.partial(
                    write_atomically_unless,
                    self._outbound / f"{order.number}.json",
                    data,
                    holds_newer_than(
                        order.updated_at,
                        self._mapping,
                        functools.partial(theirs.__setitem__, order.number),
                    ),
                    lock_timeout=self._lock_timeout,
                    abandon=abandon,
                    given_up=self._lock_given_up,
                ),
            )
            for order, data in writable
        ]
        try:
            return await asyncio.gather(*jobs, return_exceptions=True)
        except BaseException:
            abandon.set()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _ignore(theirs: datetime) -> None:
    """The default for ``holds_newer_than``'s ``newer``: nobody asked."""


def holds_newer_than(
    ours: datetime, mapping: RecordMapping, newer: Callable[[datetime], None] = _ignore
) -> Callable[[bytes], bool]:
    """Whether an existing outbound file holds a strictly newer version than ``ours`` (the same
    instant: ours replaces it, so a re-export after a crash rewrites identical content). A file
    we cannot read as one of ours is no newer copy, and is replaced. The file's last update is
    read by the mapping it was written with (at that format's precision); when newer, it is
    told to ``newer``."""

    def holds_newer(existing: bytes) -> bool:
        try:
            theirs = mapping.updated_of(mapping.outbound_record(orjson.loads(existing)))
        except orjson.JSONDecodeError:
            return False
        if theirs is None or theirs <= ours:
            return False
        newer(theirs)
        return True

    return holds_newer


def encoded(
    mapping: RecordMapping, orders: Sequence[WorkOrder], delivery: Delivery
) -> list[tuple[WorkOrder, bytes]]:
    """Each order as its outbound file's bytes. One the mapping cannot write (a date out of its
    calendar) is left out, its problems in ``delivery.refused``: it alone stays unsynced."""
    writable: list[tuple[WorkOrder, bytes]] = []
    for order in orders:
        try:
            record = mapping.encode(order)
        except RecordRejected as exc:
            delivery.refused += exc.problems
            continue
        document = mapping.outbound_document(record)
        writable.append((order, orjson.dumps(document, option=orjson.OPT_INDENT_2)))
    return writable
