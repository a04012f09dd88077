"""Inbound from a folder: list the waiting files, claim and decode them in batches, archive them
once their records are durable in TracOS (or quarantine them in rejected/ with their reasons).

A file is taken whole. One that does not parse and changed within ``INBOUND_SETTLE_SECONDS`` (or
is dated ahead of this host and was not yet seen unchanged that long) may still be being written:
it is put back under its own name, not rejected, and looked at again once it changes or the
settle time has passed. A file that changes while in hand is put back, not archived. A large
file comes as several units (parts of at most a batch of records); it is archived, or rejected
with the problems of every part, after its last part.

A suspect (in hand when an instance died) is alone in hand: claimed only once every batch handed
out is back (completed or released), and nothing else is claimed, nor read ahead, until its own
batch is back. Files this instance's recovery quarantined as suspected poison come first, as a
batch of their own with nothing in hand: the run counts them taken and rejected."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import RecordMapping

from .archive import SIDECAR_SUFFIX
from .archiver import Archiver
from .claiming import Claimer
from .claims import POISON_REASON, Quarantined
from .creating import create_folder
from .following import Gathering
from .hand import Hand
from .listing import Waiting, list_waiting, waiting_entries, waiting_files
from .repeats import said_in
from .settings import FolderSettings
from .settling import Settling
from .taking import FileTaker
from .temps import remove_stale_temps

__all__ = ["SIDECAR_SUFFIX", "FolderSource", "Waiting", "waiting_entries", "waiting_files"]


class FolderSource:
    """``ClientSource`` over a folder of JSON files: lists (``listing``), takes each file
    (``taking``: claims, reads and decodes), archives (``archiver``) and, in watch mode,
    follows (``following``)."""

    def __init__(
        self, settings: FolderSettings, mapping: RecordMapping, dry_run: bool = False
    ) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._inbound = settings.data_inbound_dir
        self._said = said_in(self._inbound)
        self._claimer = Claimer(settings, self._said)
        self._claims = self._claimer.claims
        self._settling = Settling(settings, self._claims.root, self._said, dry_run)
        self._taker = FileTaker(
            settings, mapping, self._claimer, self._settling, said=self._said, dry_run=dry_run
        )
        self._reader = self._taker.reader
        self._archiver = Archiver(settings, self._claimer, self._settling)
        self._hand = Hand()

    async def prepare(self) -> None:
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        if self._dry_run:
            return  # read in place; create, claim and recover nothing
        try:
            create_folder(self._inbound, "DATA_INBOUND_DIR")
            for setting, folder in (
                ("DATA_PROCESSED_DIR", self._settings.processed_dir),
                ("DATA_REJECTED_DIR", self._settings.rejected_dir),
            ):
                # Directly under the inbound folder (the default) they are ours: made quietly.
                create_folder(folder, None if folder.parent == self._inbound else setting)
            self._claims.open()
            for folder in (self._settings.processed_dir, self._settings.rejected_dir):
                remove_stale_temps(folder)  # a killed instance's copies across file systems
        except OSError as exc:
            raise DestinationUnwritable(
                f"inbound folder {self._inbound} is not usable: {exc.strerror or exc}"
            ) from exc

    def waiting(self, warn: bool = True) -> list[Waiting]:
        return list_waiting(self._settings, warn=warn)

    def _candidates(self) -> list[str]:
        return [w.name for w in self.waiting() if not self.resting(w.name, w.size, w.mtime_ns)]

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        """Batches of claimed, decoded files. The next batch is claimed and decoded in a worker
        thread while the consumer applies the current one (not while a suspect is in hand)."""
        if not self._dry_run:
            await asyncio.to_thread(self._claimer.refresh)
            await asyncio.to_thread(self._claimer.load_suspects)
        quarantined = self._quarantined_at_recovery()
        if quarantined:
            yield quarantined
        names = await asyncio.to_thread(self._candidates)
        names.reverse()  # oldest last: popped first
        loop = asyncio.get_running_loop()

        def read_ahead(_asked: asyncio.Event | None) -> asyncio.Future[list[InboundUnit]]:
            clear = self._hand.empty()  # read here, on the loop's thread, where it changes
            return loop.run_in_executor(None, self._taker.take, names, max_records, clear)

        async with contextlib.aclosing(
            self._hand_out(read_ahead, lambda: self._suspect_next(names))
        ) as handed:
            async for units in handed:
                yield units

    async def _give_back_open_parts(self) -> None:
        """A large file whose last part was never taken (the consumer stopped) goes back."""
        held = self._reader.take_open_parts()
        if held is not None and held.parts is not None:
            held.parts.close()
            if not self._dry_run:
                await asyncio.to_thread(self._claimer.put_back, held.path, held.name)

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
        gathering = Gathering(self, max_records, time.monotonic() + seconds)
        self._claimer.given_back.clear()
        self._claimer.refresh()
        self._claimer.load_suspects()
        quarantined = self._quarantined_at_recovery()
        if quarantined:
            yield quarantined
        async with contextlib.aclosing(
            self._hand_out(gathering.take, gathering.suspect_next)
        ) as handed:
            async for units in handed:
                yield units

    async def _hand_out(
        self,
        take: Callable[[asyncio.Event | None], Awaitable[list[InboundUnit]]],
        suspect_next: Callable[[], bool],
    ) -> AsyncGenerator[list[InboundUnit], None]:
        """The batches ``take`` gives, the next one taken while the consumer applies the one
        before (``take`` is handed an event set when the consumer asks for it), except while a
        suspect is in hand: then the hand is emptied first. What the consumer never saw is
        given back when it stops."""
        pending: asyncio.Future[list[InboundUnit]] | None = asyncio.ensure_future(take(None))
        try:
            while pending is not None:
                units = await pending
                pending = None
                if not units and suspect_next():  # stopped before it: hand first
                    await self._hand.emptied()
                    pending = asyncio.ensure_future(take(None))
                    continue
                if not units:
                    return
                self._hand.out(units)
                alone = self._suspect_in_hand(units)
                asked = asyncio.Event()
                if not alone:
                    pending = asyncio.ensure_future(take(asked))
                try:
                    yield units
                finally:
                    asked.set()
                if alone:
                    await self._hand.emptied()
                    pending = asyncio.ensure_future(take(None))
        finally:
            if pending is not None:  # the consumer stopped: give back what it never saw
                await self.release(await pending)
            await self._give_back_open_parts()

    def suspect(self, name: str) -> bool:
        """In hand when an instance died: taken alone."""
        return self._taker.suspect(name)

    def hand_empty(self) -> bool:
        """Every batch handed out is back (completed or released)."""
        return self._hand.empty()

    def _suspect_next(self, names: list[str]) -> bool:
        """The next file to claim from ``names`` is a suspect."""
        return bool(names) and not self.has_open_parts() and self.suspect(names[-1])

    def _suspect_in_hand(self, units: Sequence[InboundUnit]) -> bool:
        """``units`` hold a suspect whose every part is taken: nothing more is claimed until
        they are back. (While it has parts left, only its next part is taken.)"""
        if not self._claimer.has_suspects() or self.has_open_parts():
            return False
        return any(self.suspect(unit.name) for unit in units)

    def _quarantined_at_recovery(self) -> list[InboundUnit]:
        """Units for what this instance's recovery quarantined as suspected poison: nothing to
        apply, counted taken and rejected (each as one, like an unparsable file)."""
        return [
            InboundUnit(q.name, [], [Problem("$", POISON_REASON)], rejected_records=1, handle=q)
            for q in self._claimer.take_quarantined()
        ]

    def has_open_parts(self) -> bool:
        """A large file is in hand whose last part has not been handed out yet."""
        return self._taker.has_open_parts()

    def parts_of_suspect(self) -> bool:
        """The large file in hand is a suspect."""
        return self._taker.parts_of_suspect()

    def next_part(self, size: int) -> InboundUnit:
        """The next part of the large file in hand."""
        return self._taker.next_part(size)

    def given_back(self, name: str) -> bool:
        """Put back since the sweep began: taken at the next sweep."""
        return name in self._claimer.given_back

    def resting(self, name: str, size: int, mtime_ns: int) -> bool:
        """For a listing: ``name`` was left as maybe still being written and has not changed
        (``size``, ``mtime_ns``) nor waited the settle time since."""
        return self._settling.resting(name, size, mtime_ns)

    def claim_and_read(self, name: str, size: int) -> InboundUnit | None:
        """The unit of the waiting file ``name`` (claimed), or ``None`` when it is left."""
        return self._taker.claim_and_read(name, size)

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        try:
            if self._dry_run:
                self._archiver.would_reject(units)
                return
            in_hand = [unit for unit in units if not isinstance(unit.handle, Quarantined)]
            await asyncio.to_thread(self._archiver.archive, in_hand)
        finally:
            self._hand.back(units)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        """Put the units' files back. A large file's parts are left open: the read-ahead may be
        decoding its next part right now (from the descriptor, which the move does not touch);
        the batches' end closes it."""
        try:
            if not self._dry_run:
                await asyncio.to_thread(self._claimer.release, units)
        finally:
            self._hand.back(units)

    async def close(self) -> None:
        if not self._dry_run:
            self._claims.close()
