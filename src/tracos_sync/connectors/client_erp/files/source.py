"""Inbound from a folder: list the waiting files, claim and decode them in batches, archive them
once their records are durable in TracOS (or quarantine them in rejected/ with their reasons)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping

from ..codec import RecordDecoder
from .archive import SIDECAR_SUFFIX, folder_refuses, reject
from .claims import ClaimFolder
from .fsops import fsync_dir, move_no_clobber, place_no_clobber, remove_stale_temps
from .settings import FolderSettings

log = structlog.get_logger("tracos_sync.files")

# ``following``: how often the folder is looked at while the consumer applies a batch. What
# arrives in the last such wait is taken after the consumer asks, on its time: a few files.
FOLLOW_POLL_SECONDS = 0.01
FOLLOW_STEP_FILES = 20
# ``following``: files larger than this are read and decoded in a worker thread.
FOLLOW_INLINE_BYTES = 64 * 1024

__all__ = ["SIDECAR_SUFFIX", "FolderSource", "waiting_files"]


class FolderSource:
    """``ClientSource`` over a folder of JSON files."""

    def __init__(
        self, settings: FolderSettings, mapping: RecordMapping, dry_run: bool = False
    ) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._inbound = settings.data_inbound_dir
        self._decoder = RecordDecoder(mapping)
        self._claims = ClaimFolder(self._inbound, settings.claim_stale_seconds)
        self._claim_dir = self._claims.path

    async def prepare(self) -> None:
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        if self._dry_run:
            return  # read in place; create, claim and recover nothing
        try:
            for folder in (
                self._inbound,
                self._settings.processed_dir,
                self._settings.rejected_dir,
            ):
                folder.mkdir(parents=True, exist_ok=True)
            self._claims.open()
            for folder in (self._settings.processed_dir, self._settings.rejected_dir):
                remove_stale_temps(folder)  # a killed instance's copies across file systems
        except OSError as exc:
            raise DestinationUnwritable(
                f"inbound folder {self._inbound} is not usable: {exc.strerror or exc}"
            ) from exc

    def _refresh_claims(self) -> None:
        try:
            self._claims.ensure()
        except OSError as exc:
            raise DestinationUnwritable(
                f"claim folder {self._claim_dir} cannot be recreated: {exc.strerror or exc}"
            ) from exc

    def _candidates(self) -> list[str]:
        return waiting_files(self._settings)

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        """Batches of claimed, decoded files. The next batch is claimed and decoded in a worker
        thread while the consumer applies the current one."""
        if not self._dry_run:
            await asyncio.to_thread(self._refresh_claims)
        names = iter(await asyncio.to_thread(self._candidates))
        loop = asyncio.get_running_loop()

        def read_ahead() -> asyncio.Future[list[InboundUnit]]:
            return loop.run_in_executor(None, self._take, names, max_records)

        pending: asyncio.Future[list[InboundUnit]] | None = read_ahead()
        try:
            while pending is not None:
                units = await pending
                pending = None
                if not units:
                    return
                pending = read_ahead()
                yield units
        finally:
            if pending is not None:  # the consumer stopped: give back what it never saw
                await self.release(await pending)

    async def following(
        self, max_records: int, seconds: float
    ) -> AsyncGenerator[list[InboundUnit], None]:
        """Watch mode: while the consumer applies a batch, the files that arrive are claimed and
        decoded (the folder looked at every ``FOLLOW_POLL_SECONDS``), up to the moment the
        consumer asks for the next batch; then the folder is looked at once more. A file
        arriving under a steady flow waits for the batch in hand only, not for it and then for
        its own listing and claiming. For ``seconds``; then what was listed is taken and it ends.

        On the event loop's own thread, in steps of ``FOLLOW_STEP_FILES``: the loop has nothing
        else to do meanwhile, and a hand-over to a worker thread and back costs, on a loaded
        machine, a wait for the scheduler each way, on the path of every file."""
        if self._dry_run:  # nothing is claimed: looking again would find the same files
            async with contextlib.aclosing(self.batches(max_records)) as batches:
                async for units in batches:
                    yield units
            return
        gathering = _Gathering(self, max_records, time.monotonic() + seconds)
        self._refresh_claims()
        pending: asyncio.Task[list[InboundUnit]] | None = asyncio.create_task(gathering.take(None))
        try:
            while pending is not None:
                units = await pending
                pending = None
                if not units:
                    return
                asked = asyncio.Event()
                pending = asyncio.create_task(gathering.take(asked))
                try:
                    yield units
                finally:
                    asked.set()
        finally:
            if pending is not None:  # the consumer stopped: give back what it never saw
                await self.release(await pending)

    def _take(self, names: Iterator[str], max_records: int) -> list[InboundUnit]:
        """Claim and decode files from ``names`` until they hold ``max_records`` records (a file
        with no valid record counts as one) or the names run out."""
        units: list[InboundUnit] = []
        total = 0
        for name in names:
            unit = self._claim_and_read(name)
            if unit is None:
                continue
            units.append(unit)
            total += max(len(unit.records), 1)
            if total >= max_records:
                break
        return units

    def _claim_and_read(self, name: str, again: bool = True) -> InboundUnit | None:
        if self._dry_run:
            return self._read_in_place(name)
        source = self._inbound / name
        claimed = self._claim_dir / name
        try:
            if not place_no_clobber(source, claimed):
                # A file of that name is still in hand (claimed, not yet archived): the client
                # reused the name. Claimed beside it, never over it.
                claimed = move_no_clobber(source, self._claim_dir, name)
        except FileNotFoundError:
            if self._claim_dir.is_dir() or not again:
                return None  # another instance took it first
            self._refresh_claims()  # removed by another host as stale: recreated, loudly
            return self._claim_and_read(name, again=False)
        except OSError as exc:
            _said.warn("inbound.file_left", name, f"cannot claim: {exc.strerror}")
            return None
        try:
            raw = self._read(claimed)
        except OSError as exc:
            self._put_back(claimed, name)
            _said.warn(
                "inbound.file_left",
                name,
                f"cannot be read ({exc.strerror or exc}); retried next run",
            )
            return None
        return self._unit(name, raw, claimed)

    def _read_in_place(self, name: str) -> InboundUnit | None:
        path = self._inbound / name
        try:
            raw = self._read(path)
        except OSError as exc:
            _said.warn("inbound.file_left", name, exc.strerror or str(exc))
            return None
        return self._unit(name, raw, path)

    def _unit(self, name: str, raw: bytes | None, handle: Path) -> InboundUnit:
        if raw is None:
            limit = self._settings.max_file_bytes
            too_big = Problem("$", f"file is larger than MAX_FILE_BYTES={limit}; not read")
            return InboundUnit(name, [], [too_big], rejected_records=1, handle=handle)
        decoded = self._decoder.decode(raw)
        if decoded.unknown_fields:
            fields = sorted(decoded.unknown_fields)
            log.debug("inbound.unknown_fields_ignored", file=name, fields=fields)
        return InboundUnit(
            name, decoded.records, decoded.problems, decoded.rejected, handle, decoded.positions
        )

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes, or ``None`` when it is over the size limit (checked before reading).
        Non-blocking open: a FIFO swapped in after listing must not hang the run."""
        if path.is_symlink():
            # Only a link to a file in the inbound folder itself is read (checked again now, not
            # just when listed); the target is opened without following a further link. A
            # relative link is read as it was written: relative to the inbound folder, where
            # the client put it, not to the claim folder it has been moved into.
            target = Path(os.readlink(path))
            path = (target if target.is_absolute() else self._inbound / target).resolve()
            if path.parent != self._inbound.resolve():
                raise OSError(errno.EPERM, "symlink leads outside the inbound folder")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(path, flags)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            if info.st_size > self._settings.max_file_bytes:
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.read(self._settings.max_file_bytes + 1)
        finally:
            os.close(fd)

    def _put_back(self, claimed: Path, name: str) -> None:
        try:
            move_no_clobber(claimed, self._inbound, name)
        except FileNotFoundError:
            pass
        except OSError as exc:  # stays claimed; recovered when this instance is gone
            log.error("inbound.release_failed", file=name, reason=exc.strerror or str(exc))

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        if self._dry_run:
            for unit in units:
                if unit.problems:
                    log.warning(
                        "inbound.would_reject",
                        file=unit.name,
                        problems=len(unit.problems),
                        first=_first_problem(unit.problems),
                    )
            return
        await asyncio.to_thread(self._archive, units)

    def _archive(self, units: Sequence[InboundUnit]) -> None:
        """Archive each unit; one that fails for a reason of its own (its name, its permissions)
        is given back for the next run and costs only itself. Only a folder that refuses every
        file stops the run."""
        processed, rejected = self._settings.processed_dir, self._settings.rejected_dir
        touched: set[Path] = set()
        for position, unit in enumerate(units):
            claimed = unit.handle
            assert isinstance(claimed, Path)
            folder = rejected if unit.problems else processed
            touched.add(folder)
            try:
                if unit.problems:
                    archived = reject(claimed, rejected, unit.name, unit.problems)
                    log.warning(
                        "inbound.file_rejected",
                        file=unit.name,
                        archived_as=archived.name,
                        problems=len(unit.problems),
                        first=_first_problem(unit.problems),
                    )
                else:
                    archived = move_no_clobber(claimed, processed, unit.name)
                    log.debug("inbound.file_processed", file=unit.name, archived_as=archived.name)
            except OSError as exc:
                if folder_refuses(folder, exc):
                    # The records are durable; the files go back and are archived (as stale)
                    # next run.
                    self._release(units[position:])
                    raise DestinationUnwritable(
                        f"cannot archive {unit.name} in {folder}: {exc.strerror or exc}"
                    ) from exc
                log.error(
                    "inbound.archive_failed",
                    file=unit.name,
                    folder=str(folder),
                    reason=f"{exc.strerror or exc}; left for the next run",
                )
                self._put_back(claimed, unit.name)
        # Only the folders that received files: a folder fsync costs a journal commit and a
        # disk flush, and a sweep under a trickle archives into one folder, not two.
        for folder in sorted(touched):
            with contextlib.suppress(OSError):
                fsync_dir(folder)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        if not self._dry_run:
            await asyncio.to_thread(self._release, units)

    def _release(self, units: Sequence[InboundUnit]) -> None:
        for unit in units:
            assert isinstance(unit.handle, Path)
            self._put_back(unit.handle, unit.name)

    async def close(self) -> None:
        if not self._dry_run:
            self._claims.close()


class _Gathering:
    """The taking side of ``FolderSource.following``."""

    def __init__(self, source: FolderSource, max_records: int, until: float) -> None:
        self._source = source
        self._max = max_records
        self._until = until
        self._names: list[tuple[str, int]] = []  # with their sizes, oldest last
        self._left: set[str] = set()
        self._looked = False

    async def take(self, asked: asyncio.Event | None) -> list[InboundUnit]:
        """Claim what is listed and what arrives until ``asked`` is set (at once when
        ``None``), then look once more; stop early at ``max_records`` records."""
        units: list[InboundUnit] = []
        total = 0
        while True:
            final = asked is None or asked.is_set()  # read before looking: then a last look
            while self._names:
                total += await self._claim(units, self._max - total)
                if total >= self._max:
                    return units
                await asyncio.sleep(0)  # let the consumer's replies in between steps
            if time.monotonic() >= self._until:
                return units  # what was listed is taken: the consumer ends the sweep
            self._look()
            if final:
                while self._names and total < self._max:
                    total += await self._claim(units, self._max - total)
                return units
            assert asked is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asked.wait(), FOLLOW_POLL_SECONDS)

    def _look(self) -> None:
        # Quietly: an odd entry is said once per sweep (by the first look), and a file given
        # back (unreadable) waits for the next sweep rather than being tried at every look.
        listed = _waiting(self._source._settings, warn=not self._looked)
        self._looked = True
        self._names = [(name, size) for name, size in listed if name not in self._left]
        self._names.reverse()  # oldest last: popped first

    async def _claim(self, units: list[InboundUnit], room: int) -> int:
        """Claim up to ``FOLLOW_STEP_FILES`` listed names into ``units``, stopping once they
        hold ``room`` records; how many they hold. A large file is read and decoded in a worker
        thread: on the loop's thread it would hold up everything else (a signal, for one)."""
        records = 0
        for _ in range(min(FOLLOW_STEP_FILES, len(self._names))):
            if records >= room:
                break
            name, size = self._names.pop()
            if size > FOLLOW_INLINE_BYTES:
                unit = await asyncio.to_thread(self._source._claim_and_read, name)
            else:
                unit = self._source._claim_and_read(name)
            if unit is None:
                self._left.add(name)
                continue
            units.append(unit)
            records += max(len(unit.records), 1)
        return records


class _Repeats:
    """Warnings about one file said again at most once a minute, for the same reason: a file
    that cannot be read, under a flow that watch follows every few milliseconds, would
    otherwise be said hundreds of times (repeats go to DEBUG)."""

    EVERY_SECONDS = 60.0
    REMEMBERED = 10_000

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], float] = {}

    def warn(self, event: str, name: str, reason: str) -> None:
        key, now = (event, name, reason), time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.EVERY_SECONDS:
            log.debug(event, file=name, reason=reason, repeated=True)
            return
        if len(self._last) >= self.REMEMBERED:
            self._last.clear()
        self._last[key] = now
        log.warning(event, file=name, reason=reason)


_said = _Repeats()


def waiting_files(settings: FolderSettings) -> list[str]:
    """Names of the inbound files to take, oldest first (none if the folder is missing). Odd
    entries are skipped with a warning."""
    return [name for name, _ in _waiting(settings)]


def _waiting(settings: FolderSettings, warn: bool = True) -> list[tuple[str, int]]:
    """``waiting_files`` with their sizes; odd entries said only when ``warn``."""
    inbound = settings.data_inbound_dir
    found: list[tuple[int, str, int]] = []
    if not inbound.is_dir():
        return []
    youngest = time.time_ns() - int(settings.inbound_min_age_seconds * 1e9)
    inbound_real: Path | None = None  # resolved only for a symlink: watch looks often

    def skipped(name: str, reason: str) -> None:
        if warn:
            _said.warn("inbound.entry_skipped", name, reason)

    with os.scandir(inbound) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(".json"):
                continue
            try:
                if entry.is_symlink():
                    inbound_real = inbound_real or inbound.resolve()
                    target = Path(entry.path).resolve()
                    if target.parent != inbound_real or not target.is_file():
                        skipped(name, "symlink that leads outside the folder or nowhere")
                        continue
                    info = target.stat()
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                else:
                    skipped(name, "not a regular file")
                    continue
            except OSError as exc:
                skipped(name, exc.strerror or str(exc))
                continue
            if info.st_mtime_ns > youngest:
                continue  # may still be being written; next run takes it
            found.append((info.st_mtime_ns, name, info.st_size))
    found.sort()
    return [(name, size) for _, name, size in found]


def _first_problem(problems: Sequence[Problem]) -> str:
    p = problems[0]
    where = f"record {p.record} " if p.record is not None else ""
    return f"{where}{p.path}: {p.reason}"
