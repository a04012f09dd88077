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
import collections
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import IO

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.domain.text import printable
from tracos_sync.mapping import RecordMapping
from tracos_sync.mapping.reasons import reason

from ...codec import NoRecords, NotRecords, ParseError, RecordDecoder
from ...streaming import OneObject, check_shape
from ..claims import POISON_REASON
from ..hand import Hand
from ..reading import ONE_RECORD_MAX_BYTES, STREAM_MIN_BYTES, Parts
from ..store import Entry, FileStore, StoreUnavailable
from ..store_bytes import store_file
from .archiving import Archives, Claimed, ClaimLost
from .claims import Quarantined, SftpClaims
from .settings import SftpFolderSettings

log = structlog.get_logger("tracos_sync.files.sftp")

IGNORED_SUFFIXES = (".tmp", ".part")
CLOSE_SECONDS = 1.0


def is_input(entry: Entry) -> bool:
    return entry.kind == "file" and _named_input(entry.name)


def _named_input(name: str) -> bool:
    return (
        name.endswith(".json") and not name.startswith(".") and not name.endswith(IGNORED_SUFFIXES)
    )


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
        self._parallel = asyncio.Semaphore(settings.sftp_parallel_files)
        self._large = asyncio.Lock()
        self._streaming: Claimed | None = None  # the large file whose parts are being decoded
        self._hand = Hand()
        # Names in our claim folder left there on purpose (an archive or give-back that failed
        # for that file alone): not put back by our own sweeps, only by another instance's
        # recovery once this one is gone.
        self._kept: set[str] = set()
        # Inbound files this account could not read, by name, as listed (size, time): left
        # where they are, and not taken again until they change.
        self._cannot_read: dict[str, tuple[int, float]] = {}
        self._said_links: set[str] = set()

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
        ready = await self._ready()
        quarantined = self._quarantined_at_recovery()
        if quarantined:
            yield quarantined
        # Up to a window of files claimed and read at once, in a sliding window: their
        # requests share the round trips, and the next ones are on their way while a batch is
        # applied. Handed out in the listing's order. A suspect (in hand when an instance died)
        # is taken alone: once everything before it is handed out and back, and nothing else
        # is claimed until its own batch is back, so that a crash meanwhile is blamed on it
        # only.
        window = self._settings.sftp_parallel_files
        upcoming = collections.deque(ready)
        taking: collections.deque[asyncio.Task[InboundUnit | None]] = collections.deque()
        pending: list[InboundUnit] = []  # in hand, not handed out yet
        records = 0  # in pending (a file without any counts as one)
        try:
            while True:
                while len(taking) < window and upcoming and not self._suspect(upcoming[0]):
                    taking.append(
                        asyncio.ensure_future(self._take(upcoming.popleft(), max_records))
                    )
                if taking:
                    unit = await taking.popleft()
                    if unit is None:
                        continue
                    pending.append(unit)
                    records += max(len(unit.records), 1)
                    if records < max_records and unit.handle is not self._streaming:
                        continue  # (a large file's first part ends the batch: its next follow)
                elif not pending and upcoming:  # a suspect next, nothing of ours in hand
                    await self._hand.emptied()
                    unit = await self._take(upcoming.popleft(), max_records)
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
                if not self._dry_run and (taking or upcoming or self._streaming):
                    await self._claims.heartbeat()
                async with contextlib.aclosing(self._later_parts(batch[-1], max_records)) as parts:
                    async for part in parts:
                        yield part
        finally:
            await self._give_back_held(taking, pending)

    async def _give_back_held(
        self, taking: Sequence[asyncio.Task[InboundUnit | None]], pending: list[InboundUnit]
    ) -> None:
        """Stopped, or a failure: a large file part-way goes back (its records applied so far
        are applied again, as stale, next time); what is being taken is let finish (a claim
        cut halfway would leave its file in our claim folder until it is stale), then
        everything claimed and not handed out is given back."""
        streaming = self._streaming
        if streaming is not None:
            self._end_parts()
            with contextlib.suppress(OSError):
                await self._give_back(streaming)
        for done in await asyncio.gather(*taking, return_exceptions=True):
            if isinstance(done, InboundUnit):
                pending.append(done)
        self._end_parts()  # one begun meanwhile: it is among ``pending``
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

    async def _ready(self) -> list[Entry]:
        """The inbound files to take this sweep, oldest first (our claim folder kept alive,
        and the claims of dead instances put back, first)."""
        try:
            if not self._dry_run:
                await self._claims.heartbeat()
                if self._hand.empty() and self._streaming is None:
                    # Nothing in hand between sweeps: whatever is in our claim folder was left
                    # by a sweep the server's going away cut short.
                    await self._claims.put_back_own(self._kept)
                # Every sweep: a watch outlives the instances it sees die.
                await self._claims.recover()
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:  # our claim folder: not ours to write (it is made again if gone)
            raise DestinationUnwritable(
                f"claim folder {self._claims.folder} on {self._store.describe()} cannot be "
                f"kept: {exc}"
            ) from exc
        try:
            listed = await self._store.scan(self._inbound)
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:  # the folder itself: gone, or not ours to read
            raise DestinationUnwritable(
                f"inbound folder {self._inbound} on {self._store.describe()} cannot be "
                f"listed: {exc}"
            ) from exc
        if not self._dry_run:
            try:
                await self._claims.load_suspects()
            except StoreUnavailable as exc:
                raise DestinationUnwritable(str(exc)) from exc
        entries = [e for e in listed if is_input(e)]
        # Those that changed, or went, are forgotten: tried again.
        self._cannot_read = {
            e.name: (e.size, e.mtime)
            for e in entries
            if self._cannot_read.get(e.name) == (e.size, e.mtime)
        }
        entries = [e for e in entries if e.name not in self._cannot_read]
        for link in (e.name for e in listed if e.kind == "link" and _named_input(e.name)):
            if link not in self._said_links:  # once per name, as the local folder says it
                self._said_links.add(link)
                log.warning(
                    "inbound.entry_skipped",
                    file=printable(link),
                    reason="symlink: links are not followed on an SFTP server",
                )
        if self._dry_run:
            # Nothing of ours to touch: this host's clock stands in.
            self._claims.now = time.time()
        entries.sort(key=lambda e: (e.mtime, e.name))
        min_age = self._settings.inbound_min_age_seconds
        return [e for e in entries if self._dry_run or self._claims.now - e.mtime >= min_age]

    async def _take(self, entry: Entry, size: int) -> InboundUnit | None:
        """Claim, read and decode one file (a large one's first part, of at most ``size``
        records); ``None`` when it is not ours to take now."""
        young = self._claims.now - entry.mtime < self._settings.inbound_settle_seconds
        if young and not self._dry_run:
            return await self._judge_then_claim(entry)
        claimed = Claimed(entry.name, self._inbound / entry.name, entry)
        if not self._dry_run and not await self._claim(claimed):
            return None
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
            self._said_lost(entry.name, "read")
            return None
        except OSError as exc:
            # This file alone (its permissions): put back where it was, and left there.
            back = await self._give_back(claimed)
            self._not_readable(back or entry.name, entry, exc)
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
            await self._give_back(claimed)
            return None
        return decoded.unit(entry.name, claimed)

    async def _take_large(self, claimed: Claimed, size: int) -> InboundUnit | None:
        """A large file's first unit: decoded a part at a time (at most ``size`` records a
        part) from pieces read as the decoder needs them, in a worker thread, so that memory
        stays near one part, not the file. One large file at a time: the lock is held until
        its last part is decoded (``_end_parts``)."""
        await self._large.acquire()
        self._streaming = claimed
        loop = asyncio.get_running_loop()
        handle = store_file(self._store, claimed.path, claimed.seen.size, loop)
        try:
            unit = await asyncio.to_thread(self._first_part, claimed, handle, size)
        except BaseException as exc:
            handle.close()
            self._end_parts()
            await self._unreadable(claimed, exc)
            return None
        if not claimed.open_parts():
            handle.close()
            self._end_parts()
        return unit

    def _first_part(self, claimed: Claimed, handle: IO[bytes], size: int) -> InboundUnit:
        """In a worker thread. A large file of another shape than records where the mapping
        says is refused from its first bytes; one object that does not start as an envelope is
        one record, read whole up to MongoDB's limit for one document."""
        records = self._decoder.mapping.records_path
        try:
            check_shape(handle, records)
        except OneObject as exc:
            if claimed.seen.size > ONE_RECORD_MAX_BYTES:
                return _refused(claimed, str(exc))
            return self._decoder.decode(handle.read()).unit(claimed.name, claimed)
        except NotRecords as exc:
            return _refused(claimed, str(exc))
        except ParseError as exc:
            return _refused(claimed, reason(str(exc)))
        try:
            claimed.parts = Parts(handle, self._decoder)
        except (NotRecords, NoRecords, ParseError) as exc:
            return _refused(claimed, reason(str(exc)) if isinstance(exc, ParseError) else str(exc))
        return self._next_part(claimed, size)

    def _next_part(self, claimed: Claimed, size: int) -> InboundUnit:
        assert claimed.parts is not None
        decoded = claimed.parts.next(size)
        return decoded.unit(claimed.name, claimed, ends_input=claimed.parts.done)

    async def _later_parts(
        self, first: InboundUnit, size: int
    ) -> AsyncGenerator[list[InboundUnit], None]:
        """The parts after ``first`` (just handed out) of the large file being decoded, one
        batch each, each decoded while the one before is applied; none when ``first`` is not
        of that file."""
        claimed = first.handle
        if not isinstance(claimed, Claimed):
            return
        while claimed is self._streaming and claimed.open_parts():
            try:
                part = await asyncio.to_thread(self._next_part, claimed, size)
            except BaseException as exc:
                self._end_parts()
                await self._unreadable(claimed, exc)
                return
            if not claimed.open_parts():
                self._end_parts()
            self._hand.out(batch := [part])
            yield batch
            if not self._dry_run:
                await self._claims.heartbeat()

    def _end_parts(self) -> None:
        """The large file in hand is done with (decoded, given back or lost): the next may
        be read."""
        claimed, self._streaming = self._streaming, None
        if claimed is not None:
            if claimed.parts is not None:
                claimed.parts.close()
            self._large.release()

    async def _unreadable(self, claimed: Claimed, exc: BaseException) -> None:
        """A large file's read failed part-way: the store gone (fatal to the direction), the
        file gone (the claim lost), or this file alone (given back; its records applied so far
        are applied again, as stale, next time)."""
        if isinstance(exc, StoreUnavailable):
            raise DestinationUnwritable(str(exc)) from exc
        if isinstance(exc, FileNotFoundError):
            self._said_lost(claimed.name, "read")
        elif isinstance(exc, OSError):
            log.warning("inbound.unreadable", file=printable(claimed.name), reason=str(exc))
            await self._give_back(claimed)
        else:
            raise exc

    async def _judge_then_claim(self, entry: Entry) -> InboundUnit | None:
        """A file changed within INBOUND_SETTLE_SECONDS is read where it is and claimed only
        once it parses whole: a writer that reopens it by name (an append, a resumed upload)
        must find it there, not create a second file beside the one in hand. Claimed, it must
        still be the file that was read (same size and time), or it goes back."""
        settle = self._settings.inbound_settle_seconds
        if entry.size > STREAM_MIN_BYTES:
            # Taken once settled (a part-written export may end on a whole record and look
            # complete), then streamed; one larger than MAX_FILE_BYTES is rejected then.
            return None
        source = self._inbound / entry.name
        try:
            raw = await self._store.read(source, self._settings.max_file_bytes)
            after = await self._store.stat(source)
        except FileNotFoundError:
            return None  # taken by another instance, or moved by its writer
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            self._not_readable(entry.name, entry, exc)
            return None
        decoded = self._decoder.decode(raw)
        if (after.size, after.mtime) != (entry.size, entry.mtime) or decoded.unparsable:
            log.info(
                "inbound.still_being_written",
                file=printable(entry.name),
                reason=f"changed within INBOUND_SETTLE_SECONDS={settle:g} and "
                + ("does not parse" if decoded.unparsable else "changed while read")
                + "; left where it is",
            )
            return None
        claimed = Claimed(entry.name, source, entry)
        if not await self._claim(claimed):
            return None
        try:
            held = await self._store.stat(claimed.path)
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError:
            held = None
        if held is None or (held.size, held.mtime) != (entry.size, entry.mtime):
            log.info(
                "inbound.still_being_written",
                file=printable(entry.name),
                reason="written to while it was read; taken once it settles",
            )
            await self._give_back(claimed)
            return None
        return decoded.unit(entry.name, claimed)

    async def _claim(self, claimed: Claimed) -> bool:
        if not await self._claims.claim(claimed):
            return False
        self._kept.discard(claimed.path.name)  # that name in our folder is this file now
        return True

    def _not_readable(self, name: str, listed: Entry, exc: OSError) -> None:
        """Said once: the file is left where it is, and skipped until it changes."""
        self._cannot_read[name] = (listed.size, listed.mtime)
        log.warning(
            "inbound.unreadable",
            file=printable(name),
            reason=str(exc),
            note="left where it is; taken again once it changes (its size or time), or by the "
            "next run",
        )

    async def _give_back(self, claimed: Claimed) -> str | None:
        """``claimed`` back in the inbound folder: the name it went back under (``None``
        when it was gone, or in a dry run)."""
        if self._dry_run:
            return None
        with contextlib.suppress(FileNotFoundError):
            return await self._archives.put_back(claimed)
        return None

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        try:
            if not self._dry_run:
                await self._complete(units)
        finally:
            self._hand.back(units)

    async def _complete(self, units: Sequence[InboundUnit]) -> None:
        in_hand = [unit for unit in units if not isinstance(unit.handle, Quarantined)]
        results = await asyncio.gather(
            *(self._archive(unit) for unit in in_hand), return_exceptions=True
        )
        for unit, result in zip(in_hand, results, strict=True):
            if isinstance(result, StoreUnavailable):
                raise DestinationUnwritable(str(result)) from result
            if isinstance(result, ClaimLost):
                unit.taken_back = True
                self._said_lost(unit.name, "archived")
            elif isinstance(result, OSError):
                # This file alone: it stays in our claim folder, is not claimed again by this
                # instance, and is put back by another instance's recovery once this one is
                # gone (its claim folder stale).
                assert isinstance(unit.handle, Claimed)
                self._kept.add(unit.handle.path.name)
                log.warning("inbound.archive_failed", file=printable(unit.name), reason=str(result))
            elif isinstance(result, BaseException):
                raise result

    def _said_lost(self, name: str, when: str) -> None:
        log.warning(
            "inbound.claim_lost",
            file=printable(name),
            reason=f"no longer in this instance's claim folder when {when}: taken back by "
            "another instance, this one having been silent for over "
            f"CLAIM_STALE_SECONDS={self._settings.claim_stale_seconds:g} (or removed by "
            "someone); that instance archives it and counts it, this run does not",
        )

    async def _archive(self, unit: InboundUnit) -> None:
        """A file archived (or rejected with the problems of every part) once its last unit
        is done; a large one first looked at again: changed while in hand, it goes back."""
        claimed = unit.handle
        assert isinstance(claimed, Claimed)
        claimed.problems.extend(unit.problems)
        if not unit.ends_input:
            return
        async with self._parallel:
            if claimed.parts is not None and await self._changed_in_hand(claimed):
                return
            if claimed.problems:
                await self._archives.reject(claimed, claimed.problems)
            else:
                await self._archives.archive(claimed)
            await self._claims.forget(unit.name)

    async def _changed_in_hand(self, claimed: Claimed) -> bool:
        try:
            now = await self._store.stat(claimed.path)
        except FileNotFoundError:
            return False  # the archive says the claim was lost
        if (now.size, now.mtime) == (claimed.seen.size, claimed.seen.mtime):
            return False
        log.warning(
            "inbound.file_changed_in_hand",
            file=printable(claimed.name),
            reason="written to after it was taken (its writer was not done): put back, taken "
            "again once whole; records applied from it meanwhile are re-applied as stale",
        )
        await self._give_back(claimed)
        return True

    async def release(self, units: Sequence[InboundUnit]) -> None:
        try:
            if self._dry_run:
                return
            for given, unit in enumerate(units):
                claimed = unit.handle
                if isinstance(claimed, Quarantined):
                    continue  # never in hand
                assert isinstance(claimed, Claimed)
                try:
                    await self._archives.put_back(claimed)
                except StoreUnavailable as exc:
                    # The server is away (often with the database, whose failure brought us
                    # here): each of the rest would wait the whole retry budget again. They
                    # stay in our claim folder, and are put back when it is recovered.
                    log.warning(
                        "sftp.claims_left",
                        files=len(units) - given,
                        folder=printable(str(self._claims.folder)),
                        reason=f"not given back: {exc}",
                    )
                    return
                except OSError:
                    self._kept.add(claimed.path.name)  # this file alone; it stays claimed
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


def _refused(claimed: Claimed, why: str) -> InboundUnit:
    """A large file refused as a whole, before any of its records was read."""
    return InboundUnit(claimed.name, [], [Problem("$", why)], rejected_records=1, handle=claimed)
