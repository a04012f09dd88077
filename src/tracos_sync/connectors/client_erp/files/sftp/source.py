"""Inbound from a folder on an SFTP server.

Each file is claimed by one server-side rename that never replaces (the protocol's own
rename: inbound needs no ``posix-rename@openssh.com``) into a claim folder of this instance's
own (``<inbound>/.tracos-claims/<instance>/``): of several instances, exactly one moves it,
the others find it gone. It is then read whole (at most ``MAX_FILE_BYTES``), decoded, and,
once its records are durable in TracOS, moved into processed/ by a rename that never replaces
(``42~1.json`` beside an earlier ``42.json``), or into rejected/ after its reason file was
written there (complete, never over anything). A file given back (not applied, still being
written, changed while read) is renamed back into the inbound folder.

The claim folder's time is refreshed at every batch; one left untouched for
``CLAIM_STALE_SECONDS`` (by the server's clock) belongs to a dead instance: its files are put
back, or, when an archive move had already landed, removed (the archived copy is the same
bytes)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.domain.text import printable
from tracos_sync.mapping import RecordMapping

from ...codec import RecordDecoder
from ..store import Entry, FileStore, StoreUnavailable
from .archiving import Archives, Claimed
from .claims import SftpClaims
from .settings import SftpFolderSettings

log = structlog.get_logger("tracos_sync.files.sftp")

IGNORED_SUFFIXES = (".tmp", ".part")
# Files larger than this are read one at a time (each is held whole until decoded).
LARGE_FILE_BYTES = 4 * 1024 * 1024
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
        # Up to a window of files claimed and read at once, in a sliding window: their
        # requests share the round trips, and the next ones are on their way while a batch is
        # applied. Handed out in the listing's order.
        window = self._settings.sftp_parallel_files
        upcoming = iter(ready)
        taking: collections.deque[asyncio.Task[InboundUnit | None]] = collections.deque()
        pending: list[InboundUnit] = []  # in hand, not handed out yet
        records = 0  # in pending (a file without any counts as one)
        try:
            while True:
                while len(taking) < window and (entry := next(upcoming, None)) is not None:
                    taking.append(asyncio.ensure_future(self._take(entry)))
                if not taking:
                    break
                unit = await taking.popleft()
                if unit is None:
                    continue
                pending.append(unit)
                records += max(len(unit.records), 1)
                if records >= max_records:
                    batch, pending, records = pending, [], 0
                    yield batch
                    if not self._dry_run:
                        await self._claims.heartbeat()
            if pending:
                batch, pending = pending, []
                yield batch
        finally:
            # Stopped, or a failure: what is being taken is let finish (a claim cut halfway
            # would leave its file in our claim folder until it is stale), then everything
            # claimed and not handed out is given back.
            for done in await asyncio.gather(*taking, return_exceptions=True):
                if isinstance(done, InboundUnit):
                    pending.append(done)
            if pending:
                await self.release(pending)

    async def _ready(self) -> list[Entry]:
        """The inbound files to take this sweep, oldest first (our claim folder kept alive,
        and the claims of dead instances put back, first)."""
        try:
            if not self._dry_run:
                await self._claims.heartbeat()
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
        entries = [e for e in listed if is_input(e)]
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

    async def _take(self, entry: Entry) -> InboundUnit | None:
        """Claim, read and decode one file; ``None`` when it is not ours to take now."""
        young = self._claims.now - entry.mtime < self._settings.inbound_settle_seconds
        if young and not self._dry_run:
            return await self._judge_then_claim(entry)
        claimed = Claimed(entry.name, self._inbound / entry.name, entry)
        if not self._dry_run and not await self._claims.claim(claimed):
            return None
        limit = self._settings.max_file_bytes
        if entry.size > limit:
            too_big = Problem("$", f"file is larger than MAX_FILE_BYTES={limit}; not read")
            return InboundUnit(entry.name, [], [too_big], rejected_records=1, handle=claimed)
        try:
            # Small files a window at a time; a large one alone: memory stays near one large
            # file, not a window of them.
            async with self._large if entry.size > LARGE_FILE_BYTES else contextlib.nullcontext():
                raw, after = await self._store.read_listed(claimed.path, entry)
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            # This file alone (its permissions): left where it was, tried again next run.
            log.warning("inbound.unreadable", file=printable(entry.name), reason=str(exc))
            await self._give_back(claimed)
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

    async def _judge_then_claim(self, entry: Entry) -> InboundUnit | None:
        """A file changed within INBOUND_SETTLE_SECONDS is read where it is and claimed only
        once it parses whole: a writer that reopens it by name (an append, a resumed upload)
        must find it there, not create a second file beside the one in hand. Claimed, it must
        still be the file that was read (same size and time), or it goes back."""
        settle = self._settings.inbound_settle_seconds
        if entry.size > self._settings.max_file_bytes:
            return None  # too large to judge; rejected once it has settled
        source = self._inbound / entry.name
        try:
            async with self._large if entry.size > LARGE_FILE_BYTES else contextlib.nullcontext():
                raw = await self._store.read(source, self._settings.max_file_bytes)
            after = await self._store.stat(source)
        except FileNotFoundError:
            return None  # taken by another instance, or moved by its writer
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            log.warning("inbound.unreadable", file=printable(entry.name), reason=str(exc))
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
        if not await self._claims.claim(claimed):
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

    async def _give_back(self, claimed: Claimed) -> None:
        if self._dry_run:
            return
        with contextlib.suppress(FileNotFoundError):
            await self._archives.put_back(claimed)

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        if self._dry_run:
            return
        results = await asyncio.gather(
            *(self._archive(unit) for unit in units), return_exceptions=True
        )
        for unit, result in zip(units, results, strict=True):
            if isinstance(result, StoreUnavailable):
                raise DestinationUnwritable(str(result)) from result
            if isinstance(result, OSError):
                # This file alone: it stays claimed, and is put back once the claim is stale.
                log.warning("inbound.archive_failed", file=printable(unit.name), reason=str(result))
            elif isinstance(result, BaseException):
                raise result

    async def _archive(self, unit: InboundUnit) -> None:
        claimed = unit.handle
        assert isinstance(claimed, Claimed)
        async with self._parallel:
            if unit.problems:
                await self._archives.reject(claimed, unit.problems)
            else:
                await self._archives.archive(claimed)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        if self._dry_run:
            return
        for given, unit in enumerate(units):
            claimed = unit.handle
            assert isinstance(claimed, Claimed)
            try:
                await self._archives.put_back(claimed)
            except StoreUnavailable as exc:
                # The server is away (often with the database, whose failure brought us here):
                # each of the rest would wait the whole retry budget again. They stay in our
                # claim folder, and are put back when it is recovered.
                log.warning(
                    "sftp.claims_left",
                    files=len(units) - given,
                    folder=printable(str(self._claims.folder)),
                    reason=f"not given back: {exc}",
                )
                return
            except OSError:
                continue  # this file alone; it stays claimed

    async def close(self) -> None:
        await self._claims.stop()
        if not self._dry_run:
            # Empty once every file is archived; a tidy-up, bounded: a server that stopped
            # answering must not hold a stop past its grace (a folder left is harmless).
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_SECONDS):
                    await self._store.rmdir(self._claims.folder)
        await self._closed()
