"""Inbound from a folder on an SFTP server.

Each file is claimed by one server-side rename that never replaces (the protocol's own
rename: inbound needs no ``posix-rename@openssh.com``) into a claim folder of this instance's
own (``<inbound>/.tracos-claims/<instance>/``): of several instances, exactly one moves it,
the others find it gone. It is then read (at most ``MAX_FILE_BYTES``: whole up to 4 MiB, a
larger one a part at a time, see ``_take_large``), decoded, and, once its records are durable
in TracOS, moved into processed/ by a rename that never replaces (``42~1.json`` beside an
earlier ``42.json``), or into rejected/ after its reason file was written there (complete,
never over anything). A file given back (not applied, still being written, changed while read)
is renamed back into the inbound folder.

The claim folder's time is refreshed at every batch; one left untouched for
``CLAIM_STALE_SECONDS`` (by the server's clock) belongs to a dead instance: its files are put
back, or, when an archive move had already landed, removed (the archived copy is the same
bytes). A file put back so is a suspect: taken alone (see ``batches``), and quarantined as
suspected poison if it is in hand at the next crash too (``claims``). A claim taken back from
this instance while it was silent is said lost, and its file left to the instance that took it
(not counted here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.domain.text import printable
from tracos_sync.mapping import RecordMapping

from ...codec import RecordDecoder
from ..claims import POISON_REASON
from ..hand import Hand
from ..reading import STREAM_MIN_BYTES
from ..store import Entry, FileStore, StoreUnavailable
from .archiving import Archives, Claimed, say_lost
from .claims import SftpClaims
from .completing import Completing
from .giving_back import GivingBack
from .large_files import LargeFiles
from .listing import InboundListing
from .read_ahead import ReadAhead
from .settings import SftpFolderSettings
from .young_files import YoungFiles

log = structlog.get_logger("tracos_sync.files.sftp")

CLOSE_SECONDS = 1.0


class SftpSource:
    """``ClientSource`` over an inbound folder on an SFTP server."""

    def __init__(
        self,
        store: FileStore,
        settings: SftpFolderSettings,
        mapping: RecordMapping,
        closed: Callable[[], Awaitable[None]],
        dry_run: bool = False,
    ) -> None:
        folders = settings.locations()
        self._closed = closed
        self._store = store
        self._settings = settings
        self._inbound = folders["DATA_INBOUND_DIR"].path
        self._processed = folders["DATA_PROCESSED_DIR"].path
        self._rejected = folders["DATA_REJECTED_DIR"].path
        self._decoder = RecordDecoder(mapping)
        self._archives = Archives(store, self._inbound, self._processed, self._rejected)
        self._claims = SftpClaims(
            store, self._inbound, self._archives, settings.claim_stale_seconds
        )
        self._dry_run = dry_run
        self._large = LargeFiles(store, self._decoder)
        self._giving = GivingBack(self._archives, self._claims, dry_run)
        self._listing = InboundListing(store, self._inbound, settings, self._claims, dry_run)
        self._young = YoungFiles(
            store,
            self._inbound,
            settings,
            self._decoder,
            self._claims,
            give_back=self._giving.one,
            unreadable=self._listing.not_readable,
        )
        self._hand = Hand()
        self._completing = Completing(
            store,
            archives=self._archives,
            claims=self._claims,
            giving=self._giving,
            parallel=settings.sftp_parallel_files,
            claim_stale_seconds=settings.claim_stale_seconds,
        )

    async def prepare(self) -> None:
        if self._dry_run:
            return
        try:
            for folder in (self._inbound, self._processed, self._rejected, self._claims.folder):
                await self._store.mkdir(folder)
            await self._claims.heartbeat()
            # Said once when fsync@openssh.com is missing; inbound needs no posix-rename (its
            # claims and archive moves are the protocol's rename, which never replaces).
            await self._store.missing_extensions(self._claims.folder)
            await self._claims.recover()
            self._claims.keep_alive()
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            raise DestinationUnwritable(
                f"inbound folders on {self._store.describe()} cannot be set up: {exc}"
            ) from exc

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        if not self._dry_run and self._hand.empty() and self._large.streaming is None:
            await self._giving.leftovers()
        ready = await self._listing.ready()
        quarantined = self._quarantined_at_recovery()
        if quarantined:
            yield quarantined
        # Files claimed and read ahead (see ``ReadAhead``), handed out in the listing's order.
        # A suspect (in hand when an instance died) is taken alone: once everything before it
        # is handed out and back, and nothing else is claimed until its own batch is back, so
        # that a crash meanwhile is blamed on it only.
        ahead = ReadAhead(
            ready,
            lambda entry: self._take(entry, max_records),
            self._settings.sftp_parallel_files,
            max_records,
            self._suspect,
        )
        pending: list[InboundUnit] = []  # in hand, not handed out yet
        records = 0  # in pending (a file without any counts as one)
        try:
            while True:
                ahead.start()
                if ahead.taking():
                    unit = await ahead.next()
                    if unit is None:
                        continue
                    pending.append(unit)
                    records += max(len(unit.records), 1)
                    if records < max_records and unit.handle is not self._large.streaming:
                        continue  # (a large file's first part ends the batch: its next follow)
                elif not pending and (suspect := ahead.next_suspect()) is not None:
                    await self._hand.emptied()
                    unit = await self._take(suspect, max_records)
                    if unit is None:
                        continue
                    self._hand.out(alone := [unit])
                    yield alone
                    if not self._dry_run:
                        await self._claims.heartbeat()
                    async with contextlib.aclosing(self._later_parts(unit, max_records)) as parts:
                        async for part in parts:
                            yield part
                    await self._hand.emptied()
                    continue
                if not pending:
                    break
                batch, pending, records = pending, [], 0
                self._hand.out(batch)
                yield batch
                if not self._dry_run and (
                    ahead.taking() or ahead.upcoming() or self._large.streaming
                ):
                    await self._claims.heartbeat()
                async with contextlib.aclosing(self._later_parts(batch[-1], max_records)) as parts:
                    async for part in parts:
                        yield part
        finally:
            await self._give_back_held(ahead, pending)

    async def _give_back_held(self, ahead: ReadAhead, pending: list[InboundUnit]) -> None:
        """Stopped, or a failure: a large file part-way goes back (its records applied so far
        are applied again, as stale, next time); what is being taken is let finish (a claim
        cut halfway would leave its file in our claim folder until it is stale), then
        everything claimed and not handed out is given back."""
        streaming = self._large.streaming
        if streaming is not None:
            self._large.end()
            with contextlib.suppress(OSError):
                await self._giving.one(streaming)
        pending += await ahead.stop()
        self._large.end()  # one begun meanwhile: it is among ``pending``
        if pending:
            await self.release(pending)

    def _suspect(self, entry: Entry) -> bool:
        """In hand when an instance died: taken alone."""
        return entry.name in self._claims.suspects

    def _quarantined_at_recovery(self) -> list[InboundUnit]:
        """Units for what this instance's recovery quarantined as suspected poison: nothing to
        apply, counted taken and rejected (each as one, like an unparsable file)."""
        return [
            InboundUnit(q.name, [], [Problem("$", POISON_REASON)], rejected_records=1, handle=q)
            for q in self._claims.take_quarantined()
        ]

    async def _take(self, entry: Entry, size: int) -> InboundUnit | None:
        """Claim, read and decode one file (a large one's first part, of at most ``size``
        records); ``None`` when it is not ours to take now."""
        young = self._claims.now - entry.mtime < self._settings.inbound_settle_seconds
        if young and not self._dry_run:
            return await self._young.judge_then_claim(entry)
        claimed = Claimed(entry.name, self._inbound / entry.name, entry)
        if not self._dry_run and not await self._claims.claim(claimed):
            return None
        self._giving.taken(claimed)
        limit = self._settings.max_file_bytes
        if entry.size > limit:
            too_big = Problem("$", f"file is larger than MAX_FILE_BYTES={limit}; not read")
            return InboundUnit(entry.name, [], [too_big], rejected_records=1, handle=claimed)
        if entry.size > STREAM_MIN_BYTES:
            return await self._take_large(claimed, size)
        try:
            raw, after = await self._store.read_listed(claimed.path, entry)
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except FileNotFoundError:
            say_lost(self._settings.claim_stale_seconds, entry.name, "read")
            return None
        except OSError as exc:
            # This file alone (its permissions): put back where it was, and left there.
            self._listing.not_readable(await self._giving.one(claimed) or entry.name, entry, exc)
            return None
        decoded = self._decoder.decode(raw)
        changed = (after.size, after.mtime, after.kind) != (entry.size, entry.mtime, "file")
        settling = self._claims.now - after.mtime < self._settings.inbound_settle_seconds
        if changed or (decoded.unparsable and settling):
            log.info(
                "inbound.still_being_written",
                file=printable(entry.name),
                reason="changed while read"
                if changed
                else "does not parse and changed "
                f"within INBOUND_SETTLE_SECONDS={self._settings.inbound_settle_seconds:g}",
            )
            await self._giving.one(claimed)
            return None
        return decoded.unit(entry.name, claimed)

    async def _take_large(self, claimed: Claimed, size: int) -> InboundUnit | None:
        try:
            return await self._large.first(claimed, size)
        except BaseException as exc:
            await self._unreadable(claimed, exc)
            return None

    async def _later_parts(
        self, first: InboundUnit, size: int
    ) -> AsyncGenerator[list[InboundUnit], None]:
        """The parts after ``first`` (just handed out) of the large file being decoded, one
        batch each, each decoded while the one before is applied; none when ``first`` is not
        of that file."""
        claimed = first.handle
        if not isinstance(claimed, Claimed):
            return
        while claimed is self._large.streaming and claimed.open_parts():
            try:
                part = await self._large.next(claimed, size)
            except BaseException as exc:
                await self._unreadable(claimed, exc)
                return
            self._hand.out(batch := [part])
            yield batch
            if not self._dry_run:
                await self._claims.heartbeat()

    async def _unreadable(self, claimed: Claimed, exc: BaseException) -> None:
        """A large file's read failed part-way: the store gone (fatal to the direction), the
        file gone (the claim lost), or this file alone (given back; its records applied so far
        are applied again, as stale, next time)."""
        if isinstance(exc, StoreUnavailable):
            raise DestinationUnwritable(str(exc)) from exc
        if isinstance(exc, FileNotFoundError):
            say_lost(self._settings.claim_stale_seconds, claimed.name, "read")
        elif isinstance(exc, OSError):
            back = await self._giving.one(claimed)
            self._listing.not_readable(back or claimed.name, claimed.seen, exc)
        else:
            raise exc

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        try:
            if not self._dry_run:
                await self._completing.complete(units)
        finally:
            self._hand.back(units)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        try:
            await self._giving.all(units)
        finally:
            self._hand.back(units)

    async def close(self) -> None:
        await self._claims.stop()
        if not self._dry_run:
            # Empty once every file is archived; a tidy-up, bounded: a server that stopped
            # answering must not hold a stop past its grace (a folder left is harmless).
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await self._store.rmdir(self._claims.folder)
        await self._closed()
