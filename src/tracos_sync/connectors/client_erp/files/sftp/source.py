"""Inbound from a folder on an SFTP server.

Each file is claimed by one server-side rename (``posix-rename``) into a claim folder of this
instance's own (``<inbound>/.tracos-claims/<instance>/``): of several instances, exactly one
moves it, the others find it gone. It is then read whole (at most ``MAX_FILE_BYTES``), decoded,
and, once its records are durable in TracOS, moved into processed/ by a rename that never
replaces (``42~1.json`` beside an earlier ``42.json``), or into rejected/ after its reason file
was written there (complete, never over anything). A file given back (not applied, still being
written, changed while read) is renamed back into the inbound folder.

The claim folder's time is refreshed at every batch; one left untouched for
``CLAIM_STALE_SECONDS`` (by the server's clock) belongs to a dead instance: its files are put
back, or, when an archive move had already landed, removed (the archived copy is the same
bytes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
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
from .answers import POSIX_RENAME
from .archiving import Archives, Claimed
from .settings import SftpFolderSettings

log = structlog.get_logger("tracos_sync.files.sftp")

CLAIMS = ".tracos-claims"
IGNORED_SUFFIXES = (".tmp", ".part")
# Files larger than this are read one at a time (each is held whole until decoded).
LARGE_FILE_BYTES = 4 * 1024 * 1024


def instance_name() -> str:
    """This instance's claim folder: host, pid and a random part (pids are reused)."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    return f"{host[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


def is_input(entry: Entry) -> bool:
    name = entry.name
    return (
        entry.kind == "file"
        and name.endswith(".json")
        and not name.startswith(".")
        and not name.endswith(IGNORED_SUFFIXES)
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
        self._claims_root = self._inbound / CLAIMS
        self._claims = self._claims_root / instance_name()
        self._decoder = RecordDecoder(mapping)
        self._archives = Archives(store, self._inbound, self._processed, self._rejected)
        self._dry_run = dry_run
        self._parallel = asyncio.Semaphore(settings.sftp_parallel_files)
        self._now = 0.0  # the server's clock, read from our claim folder's time
        self._large = asyncio.Lock()

    async def prepare(self) -> None:
        if self._dry_run:
            return
        try:
            for folder in (self._inbound, self._processed, self._rejected, self._claims):
                await self._store.mkdir(folder)
            await self._heartbeat()
            missing = await self._store.missing_extensions(self._claims)
            if POSIX_RENAME in missing:
                raise DestinationUnwritable(
                    f"{self._store.describe()} offers no {POSIX_RENAME}: a file could not be "
                    "claimed by one atomic rename (two instances could both take it), so "
                    "nothing is taken"
                )
            await self._recover()
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            raise DestinationUnwritable(
                f"inbound folders on {self._store.describe()} cannot be set up: {exc}"
            ) from exc

    async def _heartbeat(self) -> None:
        """Our claim folder's time refreshed; that time is the server's now."""
        await self._store.touch(self._claims)
        self._now = (await self._store.stat(self._claims)).mtime

    async def _recover(self) -> None:
        """Claim folders of instances dead for ``CLAIM_STALE_SECONDS``: their files put back."""
        stale_before = self._now - self._settings.claim_stale_seconds
        for folder in await self._store.scan(self._claims_root):
            path = self._claims_root / folder.name
            if folder.kind != "folder" or path == self._claims or folder.mtime > stale_before:
                continue
            try:
                entries = await self._store.scan(path)
            except FileNotFoundError:
                continue  # recovered and removed by another instance meanwhile
            for entry in entries:
                claimed = Claimed(entry.name, path / entry.name, entry)
                try:
                    if await self._archives.already_archived(claimed):
                        await self._store.unlink(claimed.path)
                        log.info("sftp.claim_archived_before", file=printable(entry.name))
                        continue
                    back = await self._archives.put_back(claimed)
                except FileNotFoundError:
                    continue  # another instance recovering the same claims moved it first
                else:
                    log.warning(
                        "sftp.claim_recovered",
                        file=printable(entry.name),
                        to=printable(back),
                        reason=f"claimed by an instance silent for over "
                        f"{self._settings.claim_stale_seconds:g}s ({folder.name})",
                    )
            with contextlib.suppress(OSError):
                await self._store.rmdir(path)

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        try:
            if not self._dry_run:
                await self._heartbeat()
                await self._recover()  # every sweep: a watch outlives the instances it sees die
            entries = [e for e in await self._store.scan(self._inbound) if is_input(e)]
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:  # the folder itself: gone, or not ours to read
            raise DestinationUnwritable(
                f"inbound folder {self._inbound} on {self._store.describe()} cannot be "
                f"listed: {exc}"
            ) from exc
        if self._dry_run:
            self._now = time.time()  # nothing of ours to touch: this host's clock stands in
        entries.sort(key=lambda e: (e.mtime, e.name))
        min_age = self._settings.inbound_min_age_seconds
        ready = [e for e in entries if self._dry_run or self._now - e.mtime >= min_age]
        # A window of files claimed and read at once: their requests share the round trips.
        window = self._settings.sftp_parallel_files
        pending: list[InboundUnit] = []  # in hand, not handed out yet
        try:
            for start in range(0, len(ready), window):
                taken = await asyncio.gather(
                    *(self._take(entry) for entry in ready[start : start + window]),
                    return_exceptions=True,
                )
                failed = next((t for t in taken if isinstance(t, BaseException)), None)
                pending += [t for t in taken if isinstance(t, InboundUnit)]
                if failed is not None:
                    raise failed
                while (cut := _batch_end(pending, max_records)) is not None:
                    batch, pending = pending[:cut], pending[cut:]
                    yield batch
                    if not self._dry_run:
                        await self._heartbeat()
            if pending:
                batch, pending = pending, []
                yield batch
        finally:
            if pending:  # claimed but never handed out (stopped, or a failure): given back
                await self.release(pending)

    async def _take(self, entry: Entry) -> InboundUnit | None:
        """Claim, read and decode one file; ``None`` when it is not ours to take now."""
        source = self._inbound / entry.name
        claimed = Claimed(entry.name, source, entry)
        if not self._dry_run:
            claimed.path = self._claims / entry.name
            try:
                await self._store.move_private(source, claimed.path)
            except FileNotFoundError:
                return None  # another instance took it first
            except StoreUnavailable as exc:
                raise DestinationUnwritable(str(exc)) from exc
            except OSError as exc:
                log.warning("inbound.unreadable", file=printable(entry.name), reason=str(exc))
                return None
        limit = self._settings.max_file_bytes
        if entry.size > limit:
            too_big = Problem("$", f"file is larger than MAX_FILE_BYTES={limit}; not read")
            return InboundUnit(entry.name, [], [too_big], rejected_records=1, handle=claimed)
        try:
            # Small files a window at a time; a large one alone: memory stays near one large
            # file, not a window of them.
            async with self._large if entry.size > LARGE_FILE_BYTES else contextlib.nullcontext():
                raw = await self._store.read(claimed.path, limit)
            after = await self._store.stat(claimed.path)
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            # This file alone (its permissions): left where it was, tried again next run.
            log.warning("inbound.unreadable", file=printable(entry.name), reason=str(exc))
            await self._give_back(claimed)
            return None
        decoded = self._decoder.decode(raw)
        changed = (after.size, after.mtime) != (entry.size, entry.mtime)
        settling = self._now - after.mtime < self._settings.inbound_settle_seconds
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
        return InboundUnit(
            entry.name,
            decoded.records,
            decoded.problems,
            decoded.rejected,
            claimed,
            decoded.positions,
        )

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
        for unit in units:
            claimed = unit.handle
            assert isinstance(claimed, Claimed)
            with contextlib.suppress(OSError):
                await self._archives.put_back(claimed)

    async def close(self) -> None:
        if not self._dry_run:
            with contextlib.suppress(OSError):
                await self._store.rmdir(self._claims)  # empty once every file is archived
        await self._closed()


def _batch_end(units: Sequence[InboundUnit], max_records: int) -> int | None:
    """How many of ``units`` make a batch of about ``max_records`` (None: not enough yet)."""
    records = 0
    for i, unit in enumerate(units):
        records += max(len(unit.records), 1)
        if records >= max_records:
            return i + 1
    return None
