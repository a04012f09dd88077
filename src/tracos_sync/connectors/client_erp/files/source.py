"""Inbound from a folder: list the waiting files, claim and decode them in batches, archive them
once their records are durable in TracOS (or quarantine them in rejected/ with their reasons).

A file is taken whole. One that does not parse and changed within ``INBOUND_SETTLE_SECONDS`` (or
is dated ahead of this host and was not yet seen unchanged that long) may still be being written:
it is put back under its own name, not rejected, and looked at again once it changes or the
settle time has passed. A file that changes while in hand is put back, not archived. A large
file comes as several units (parts of at most a batch of records); it is archived, or rejected
with the problems of every part, after its last part."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping

from ..codec import Decoded, NotAnArray, RecordDecoder
from .archive import SIDECAR_SUFFIX, folder_refuses, reject
from .claims import ClaimFolder
from .moves import SourceChanged, move_no_clobber, place_no_clobber
from .notes import Notes, identity
from .reading import STREAM_MIN_BYTES, Parts, ends_complete, open_input, unchanged
from .settings import FolderSettings
from .temps import fsync_dir, remove_stale_temps

log = structlog.get_logger("tracos_sync.files")

# ``following``: how often the folder is looked at while the consumer applies a batch. What
# arrives in the last such wait is taken after the consumer asks, on its time: a few files.
FOLLOW_POLL_SECONDS = 0.01
FOLLOW_STEP_FILES = 20
# ``following``: files larger than this are read and decoded in a worker thread.
FOLLOW_INLINE_BYTES = 64 * 1024

__all__ = ["SIDECAR_SUFFIX", "FolderSource", "Waiting", "waiting_entries", "waiting_files"]


class _StillWriting(Exception):
    """The file may still be being written: left for later, not judged now."""


@dataclass(eq=False)
class _Held:
    """A file in hand: where it is now (claimed, or in place for a dry run), what it was when
    opened (``None`` for a link: not compared), and what its parts found so far."""

    name: str
    path: Path
    opened: os.stat_result | None
    problems: list[Problem] = field(default_factory=list)
    parts: Parts | None = None
    left: bool = False  # put back already (maybe still being written): nothing to archive


class FolderSource:
    """``ClientSource`` over a folder of JSON files."""

    def __init__(
        self, settings: FolderSettings, mapping: RecordMapping, dry_run: bool = False
    ) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._inbound = settings.data_inbound_dir
        self._decoder = RecordDecoder(mapping)
        self._claims = ClaimFolder(
            self._inbound, settings.claim_stale_seconds, settings.rejected_dir
        )
        self._claim_dir = self._claims.path
        self._said = said_in(self._inbound)
        # Files left as maybe still being written, by name: their size and mtime then, and when
        # to look again even if unchanged (monotonic). Not looked at before either comes.
        self._resting: dict[str, tuple[int, int, float]] = {}
        self._settling = Notes(self._claims.root, "settling")
        self._settling_noted: set[str] = set()
        self._suspects: set[str] = set()
        self._open_parts: _Held | None = None  # a large file whose parts are being handed out

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
        return [
            w.name for w in _waiting(self._settings) if not self.resting(w.name, w.size, w.mtime_ns)
        ]

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        """Batches of claimed, decoded files. The next batch is claimed and decoded in a worker
        thread while the consumer applies the current one."""
        if not self._dry_run:
            await asyncio.to_thread(self._refresh_claims)
            self._suspects = await asyncio.to_thread(self._claims.suspects.names)
        names = await asyncio.to_thread(self._candidates)
        names.reverse()  # oldest last: popped first
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
            await self._give_back_open_parts()

    async def _give_back_open_parts(self) -> None:
        """A large file whose last part was never taken (the consumer stopped) goes back."""
        held, self._open_parts = self._open_parts, None
        if held is not None and held.parts is not None:
            held.parts.close()
            if not self._dry_run:
                await asyncio.to_thread(self._put_back, held.path, held.name)

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
        self._suspects = self._claims.suspects.names()
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
            await self._give_back_open_parts()

    def _take(self, names: list[str], max_records: int) -> list[InboundUnit]:
        """Claim and decode files from ``names`` (oldest last) until they hold ``max_records``
        records (a file with no valid record counts as one) or the names run out. A large file's
        parts go one per batch; a suspect (in hand at a crash) goes alone."""
        units: list[InboundUnit] = []
        total = 0
        while total < max_records:
            if self._open_parts is not None:
                alone = self._open_parts.name in self._suspects
                part = self.next_part(max_records - total)
                units.append(part)
                total += max(len(part.records), 1)
                if self._open_parts is not None or alone:
                    break
                continue
            if not names:
                break
            name = names[-1]
            if name in self._suspects and units:
                break  # alone, in the next batch
            names.pop()
            unit = self._claim_and_read(name, max_records - total)
            if unit is None:
                continue
            units.append(unit)
            total += max(len(unit.records), 1)
            if self._open_parts is not None or name in self._suspects:
                break
        return units

    def suspect(self, name: str) -> bool:
        """In hand when an instance died: taken alone in its own batch."""
        return name in self._suspects

    def has_open_parts(self) -> bool:
        """A large file is in hand whose last part has not been handed out yet."""
        return self._open_parts is not None

    def parts_of_suspect(self) -> bool:
        return self._open_parts is not None and self._open_parts.name in self._suspects

    def next_part(self, size: int) -> InboundUnit:
        """The next part of the large file in hand."""
        held = self._open_parts
        assert held is not None
        assert held.parts is not None
        decoded = held.parts.next(size)
        if held.parts.done:
            self._open_parts = None
        return self._part_unit(held, decoded)

    def _part_unit(self, held: _Held, decoded: Decoded) -> InboundUnit:
        assert held.parts is not None
        if decoded.unparsable and self._left_writing(held):
            # Its records so far are applied (again next time: stale); the file is not done.
            return InboundUnit(held.name, decoded.records, [], 0, held, decoded.positions, False)
        return InboundUnit(
            held.name,
            decoded.records,
            decoded.problems,
            decoded.rejected,
            held,
            decoded.positions,
            ends_input=held.parts.done,
        )

    def _left_writing(self, held: _Held) -> bool:
        """A large file whose bytes stop being JSON part-way and that may still be being
        written goes back now (not rejected)."""
        if held.opened is None or not self._may_be_writing(held.name, held.opened):
            return False
        held.left = True
        if not self._dry_run:
            self._put_back(held.path, held.name)
            self._rest(held.name, self._still_writing_reason(held.opened))
        return True

    def _claim_and_read(self, name: str, size: int, again: bool = True) -> InboundUnit | None:
        if self._dry_run:
            return self._read_in_place(name, size)
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
            return self._claim_and_read(name, size, again=False)
        except OSError as exc:
            self._said.warn("inbound.file_left", name, f"cannot claim: {exc.strerror}")
            return None
        try:
            return self._read_unit(name, claimed, size)
        except _StillWriting as exc:
            self._put_back(claimed, name)
            self._rest(name, str(exc))
            return None
        except OSError as exc:
            self._put_back(claimed, name)
            self._said.warn(
                "inbound.file_left",
                name,
                f"cannot be read ({exc.strerror or exc}); retried next run",
            )
            return None

    def _read_in_place(self, name: str, size: int) -> InboundUnit | None:
        path = self._inbound / name
        try:
            return self._read_unit(name, path, size)
        except _StillWriting as exc:
            self._said.warn("inbound.file_left", name, str(exc))
            return None
        except OSError as exc:
            self._said.warn("inbound.file_left", name, exc.strerror or str(exc))
            return None

    def _read_unit(self, name: str, path: Path, size: int) -> InboundUnit:
        """The file's unit (its first part when it is large). Raises ``OSError`` (cannot be
        read) or ``_StillWriting``."""
        fd, info = open_input(path, self._inbound)
        held = _Held(name, path, None if path.is_symlink() else info)
        handle = os.fdopen(fd, "rb")
        if info.st_size > self._settings.max_file_bytes:
            handle.close()
            limit = self._settings.max_file_bytes
            too_big = Problem("$", f"file is larger than MAX_FILE_BYTES={limit}; not read")
            return InboundUnit(name, [], [too_big], rejected_records=1, handle=held)
        if info.st_size > STREAM_MIN_BYTES:
            if not ends_complete(handle) and self._may_be_writing(name, info):
                # An export being written: its records would be applied at every look.
                handle.close()
                raise _StillWriting(self._still_writing_reason(info))
            try:
                held.parts = Parts(handle, self._decoder)
            except NotAnArray:
                handle.seek(0)  # one object (or nothing): read whole, as a small file
            else:
                self._open_parts = held
                return self.next_part(size)
        with handle:
            raw = handle.read(self._settings.max_file_bytes + 1)
            after = os.fstat(handle.fileno())
        decoded = self._decoder.decode(raw)
        if not unchanged(info, after) or (decoded.unparsable and self._may_be_writing(name, info)):
            raise _StillWriting(self._still_writing_reason(info))
        if decoded.unknown_fields:
            fields = sorted(decoded.unknown_fields)
            log.debug("inbound.unknown_fields_ignored", file=name, fields=fields)
        return InboundUnit(
            name, decoded.records, decoded.problems, decoded.rejected, held, decoded.positions
        )

    def _may_be_writing(self, name: str, info: os.stat_result) -> bool:
        """Whether a file that does not parse may still be being written: it changed within the
        settle time, or it is dated ahead of this host (its mtime then tells nothing) and has
        not been seen unchanged for the settle time yet (a note kept under ``.claims/``, as a
        one-shot run looks only once)."""
        settle_ns = int(self._settings.inbound_settle_seconds * 1e9)
        if settle_ns <= 0:
            return False
        now = time.time_ns()
        if info.st_mtime_ns <= now - settle_ns:
            return False
        if info.st_mtime_ns <= now + settle_ns or self._dry_run:
            return True
        seen = identity(info)
        note = self._settling.get(name)
        if note is not None and note.get("identity") == seen:
            elapsed = now - int(note.get("seenAtNs", now))
            if elapsed >= settle_ns:
                self._settling_noted.add(name)  # judged now: its archive forgets the note
                return False
            if elapsed >= 0:
                return True
        with contextlib.suppress(OSError):  # a hint only
            self._settling.put(name, {"identity": seen, "seenAtNs": now})
            self._settling_noted.add(name)
        return True

    def _still_writing_reason(self, info: os.stat_result) -> str:
        ago = time.time() - info.st_mtime_ns / 1e9
        when = f"changed {ago:.1f} s ago" if ago >= 0 else f"dated {-ago:.0f} s ahead of this host"
        settle = self._settings.inbound_settle_seconds
        return (
            f"does not parse (yet) and {when}: may still be being written; looked at again once "
            f"it changes or in {settle:g} s (INBOUND_SETTLE_SECONDS)"
        )

    def _rest(self, name: str, reason: str) -> None:
        """Left as maybe still being written: not looked at again before it changes or the
        settle time has passed."""
        with contextlib.suppress(OSError):
            info = os.stat(self._inbound / name)
            until = time.monotonic() + self._settings.inbound_settle_seconds
            self._resting[name] = (info.st_size, info.st_mtime_ns, until)
        self._said.warn("inbound.file_left", name, reason, level="info")

    def resting(self, name: str, size: int, mtime_ns: int) -> bool:
        """For a listing: ``name`` was left as maybe still being written and has not changed
        (``size``, ``mtime_ns``) nor waited the settle time since."""
        resting = self._resting.get(name)
        if resting is None:
            return False
        if (size, mtime_ns) != resting[:2] or time.monotonic() >= resting[2]:
            del self._resting[name]
            return False
        return True

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
        """Archive each file whose last unit is among ``units`` (a large file's earlier parts
        only add their problems); one that fails for a reason of its own (its name, its
        permissions) is given back for the next run and costs only itself. A file that changed
        while in hand, or that does not parse and may still be being written, is put back. Only
        a folder that refuses every file stops the run."""
        processed, rejected = self._settings.processed_dir, self._settings.rejected_dir
        touched: set[Path] = set()
        for position, unit in enumerate(units):
            held = unit.handle
            assert isinstance(held, _Held)
            held.problems.extend(unit.problems)
            if not unit.ends_input or held.left:
                continue
            if self._left_in_hand(held):
                continue
            problems = held.problems
            folder = rejected if problems else processed
            touched.add(folder)
            try:
                if problems:
                    archived = reject(held.path, rejected, held.name, problems)
                    log.warning(
                        "inbound.file_rejected",
                        file=held.name,
                        archived_as=archived.name,
                        problems=len(problems),
                        first=_first_problem(problems),
                    )
                else:
                    archived = move_no_clobber(held.path, processed, held.name)
                    log.debug("inbound.file_processed", file=held.name, archived_as=archived.name)
            except SourceChanged:
                self._changed_in_hand(held)
                continue
            except OSError as exc:
                if folder_refuses(folder, exc):
                    # The records are durable; the files go back and are archived (as stale)
                    # next run.
                    self._release(units[position:])
                    raise DestinationUnwritable(
                        f"cannot archive {held.name} in {folder}: {exc.strerror or exc}"
                    ) from exc
                log.error(
                    "inbound.archive_failed",
                    file=held.name,
                    folder=str(folder),
                    reason=f"{exc.strerror or exc}; left for the next run",
                )
                self._put_back(held.path, held.name)
                continue
            self._forget(held.name)
        # Only the folders that received files: a folder fsync costs a journal commit and a
        # disk flush, and a sweep under a trickle archives into one folder, not two.
        for folder in sorted(touched):
            with contextlib.suppress(OSError):
                fsync_dir(folder)

    def _left_in_hand(self, held: _Held) -> bool:
        """Whether the file goes back rather than to an archive: it changed since it was opened
        (a writer still at it)."""
        if held.opened is None:
            return False
        try:
            now = os.stat(held.path, follow_symlinks=False)
        except OSError:
            return False  # archiving says what happened
        if not unchanged(held.opened, now):
            self._changed_in_hand(held)
            return True
        return False

    def _changed_in_hand(self, held: _Held) -> None:
        self._put_back(held.path, held.name)
        log.warning(
            "inbound.file_changed_in_hand",
            file=held.name,
            reason="written to after it was taken (its writer was not done): put back, taken "
            "again once whole; records applied from it meanwhile are re-applied as stale",
        )

    def _forget(self, name: str) -> None:
        """Archived: what was noted about the file no longer applies."""
        if name in self._suspects:
            self._suspects.discard(name)
            with contextlib.suppress(OSError):
                self._claims.suspects.forget(name)
        if name in self._settling_noted:
            self._settling_noted.discard(name)
            with contextlib.suppress(OSError):
                self._settling.forget(name)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        if not self._dry_run:
            await asyncio.to_thread(self._release, units)

    def _release(self, units: Sequence[InboundUnit]) -> None:
        """Put the units' files back. A large file's parts are left open: the read-ahead may be
        decoding its next part right now (from the descriptor, which the move does not touch);
        the batches' end closes it."""
        for unit in units:
            held = unit.handle
            assert isinstance(held, _Held)
            self._put_back(held.path, held.name)

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
        self._batch_ends = False  # a large file's part or a suspect ends the batch

    def _more(self) -> bool:
        return bool(self._names) or self._source.has_open_parts()

    async def take(self, asked: asyncio.Event | None) -> list[InboundUnit]:
        """Claim what is listed and what arrives until ``asked`` is set (at once when
        ``None``), then look once more; stop early at ``max_records`` records."""
        units: list[InboundUnit] = []
        total = 0
        self._batch_ends = False
        while True:
            final = asked is None or asked.is_set()  # read before looking: then a last look
            while self._more():
                total += await self._claim(units, self._max - total)
                if total >= self._max or self._batch_ends:
                    return units
                await asyncio.sleep(0)  # let the consumer's replies in between steps
            if time.monotonic() >= self._until:
                return units  # what was listed is taken: the consumer ends the sweep
            self._look()
            if final:
                while self._more() and total < self._max and not self._batch_ends:
                    total += await self._claim(units, self._max - total)
                return units
            assert asked is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asked.wait(), FOLLOW_POLL_SECONDS)

    def _look(self) -> None:
        # Quietly: an odd entry is said once per sweep (by the first look), and a file given
        # back (unreadable) waits for the next sweep rather than being tried at every look. A
        # file left as maybe still being written waits until it changes or its settle time is
        # over: watch would otherwise re-read it at every look.
        listed = _waiting(self._source._settings, warn=not self._looked)
        self._looked = True
        self._names = [
            (w.name, w.size)
            for w in listed
            if w.name not in self._left and not self._source.resting(w.name, w.size, w.mtime_ns)
        ]
        self._names.reverse()  # oldest last: popped first

    async def _claim(self, units: list[InboundUnit], room: int) -> int:
        """Claim up to ``FOLLOW_STEP_FILES`` listed names into ``units``, stopping once they
        hold ``room`` records; how many they hold. A large file is read and decoded in a worker
        thread: on the loop's thread it would hold up everything else (a signal, for one). A
        large file's part, or a suspect (in hand at a crash), ends the batch."""
        source = self._source
        if source.has_open_parts():
            alone = source.parts_of_suspect()
            part = await asyncio.to_thread(source.next_part, room)
            units.append(part)
            self._batch_ends = source.has_open_parts() or alone
            return max(len(part.records), 1)
        records = 0
        for _ in range(min(FOLLOW_STEP_FILES, len(self._names))):
            if records >= room:
                break
            name, size = self._names[-1]
            if source.suspect(name) and units:
                self._batch_ends = True  # alone, in the next batch
                break
            self._names.pop()
            if size > FOLLOW_INLINE_BYTES:
                unit = await asyncio.to_thread(source._claim_and_read, name, room - records)
            else:
                unit = source._claim_and_read(name, room - records)
            if unit is None:
                self._left.add(name)
                continue
            units.append(unit)
            records += max(len(unit.records), 1)
            if source.has_open_parts() or source.suspect(name):
                self._batch_ends = True
                break
        return records


class _Repeats:
    """Warnings about one file said again at most once a minute, for the same reason: a file
    that cannot be read, under a flow that watch follows every few milliseconds, would
    otherwise be said hundreds of times (repeats go to DEBUG). One per inbound folder: two
    integrations' ``1.json`` are two files."""

    EVERY_SECONDS = 60.0
    REMEMBERED = 10_000

    def __init__(self, folder: str = "") -> None:
        self._folder = folder
        self._last: dict[tuple[str, str, str], float] = {}
        self._once: set[tuple[str, str, str]] = set()

    def warn(self, event: str, name: str, reason: str, level: str = "warning") -> None:
        key, now = (event, name, reason), time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.EVERY_SECONDS:
            log.debug(event, file=name, reason=reason, repeated=True)
            return
        if len(self._last) >= self.REMEMBERED:
            self._last.clear()
        self._last[key] = now
        if level == "info":
            log.info(event, file=name, reason=reason)
        else:
            log.warning(event, file=name, reason=reason)

    def once(self, event: str, name: str, what: str, **fields: object) -> None:
        """Said once per file (``what`` tells one version of it from another)."""
        key = (event, name, what)
        if key in self._once:
            return
        if len(self._once) >= self.REMEMBERED:
            self._once.clear()
        self._once.add(key)
        log.warning(event, file=name, **fields)


_said_by_folder: dict[str, _Repeats] = {}


def said_in(folder: Path) -> _Repeats:
    """The warning memory of one inbound folder."""
    key = os.path.abspath(folder)
    said = _said_by_folder.get(key)
    if said is None:
        said = _said_by_folder[key] = _Repeats(key)
    return said


class Waiting(NamedTuple):
    """An inbound file waiting to be taken; ``ahead``: dated ahead of this host's clock. (A
    tuple: watch lists the folder every few milliseconds under a flow.)"""

    name: str
    size: int
    mtime_ns: int
    ahead: bool = False


def waiting_files(settings: FolderSettings) -> list[str]:
    """Names of the inbound files to take, oldest first (none if the folder is missing). Odd
    entries are skipped with a warning."""
    return [w.name for w in _waiting(settings)]


def waiting_entries(settings: FolderSettings) -> list[Waiting]:
    """The inbound files to take, oldest first, with what the listing saw of them."""
    return _waiting(settings)


def _waiting(settings: FolderSettings, warn: bool = True) -> list[Waiting]:
    """``waiting_entries``; odd entries said only when ``warn``. A file dated ahead of this host
    is taken (``INBOUND_MIN_AGE_SECONDS`` cannot be judged from its date) and said once."""
    inbound = settings.data_inbound_dir
    found: list[Waiting] = []
    if not inbound.is_dir():
        return []
    said = said_in(inbound)
    now = time.time_ns()
    youngest = now - int(settings.inbound_min_age_seconds * 1e9)
    inbound_real: Path | None = None  # resolved only for a symlink: watch looks often

    def skipped(name: str, reason: str) -> None:
        if warn:
            said.warn("inbound.entry_skipped", name, reason)

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
            mtime = info.st_mtime_ns
            ahead = mtime > now
            if ahead:
                seconds = (mtime - now) / 1e9
                said.once(
                    "inbound.file_dated_ahead",
                    name,
                    str(mtime),
                    ahead_seconds=round(seconds, 3),
                    reason=f"its modification time is {seconds:.1f} s ahead of this host's "
                    "clock (the writer's clock, or a copy that kept a date); taken now",
                )
            elif mtime > youngest:
                continue  # may still be being written; next run takes it
            found.append(Waiting(name, info.st_size, mtime, ahead))
    found.sort(key=lambda w: (w.mtime_ns, w.name))
    return found


def _first_problem(problems: Sequence[Problem]) -> str:
    p = problems[0]
    where = f"record {p.record} " if p.record is not None else ""
    return f"{where}{p.path}: {p.reason}"
