"""Watch mode's taking side: while the consumer applies a batch, the files that arrive are
claimed and decoded, up to the moment it asks for the next batch (``FolderSource.following``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol

from tracos_sync.domain.ports import InboundUnit

from .listing import Waiting

# ``following``: how often the folder is looked at while the consumer applies a batch. What
# arrives in the last such wait is taken after the consumer asks, on its time: a few files.
FOLLOW_POLL_SECONDS = 0.01
FOLLOW_STEP_FILES = 20
# ``following``: files larger than this are read and decoded in a worker thread.
FOLLOW_INLINE_BYTES = 64 * 1024


class Taker(Protocol):
    """What the gathering asks of the folder source."""

    def waiting(self, warn: bool) -> list[Waiting]:
        """The files waiting in the folder, oldest first; odd entries said only when ``warn``."""
        ...

    def given_back(self, name: str) -> bool:
        """Put back since the sweep began (not archived): taken at the next sweep."""
        ...

    def resting(self, name: str, size: int, mtime_ns: int) -> bool:
        """Left as maybe still being written, and unchanged since."""
        ...

    def suspect(self, name: str) -> bool:
        """In hand when an instance died: taken alone."""
        ...

    def hand_empty(self) -> bool:
        """Every batch handed out is back (completed or released): a suspect may be claimed."""
        ...

    def has_open_parts(self) -> bool:
        """A large file is in hand whose last part has not been handed out yet."""
        ...

    def parts_of_suspect(self) -> bool:
        """The large file in hand is a suspect."""
        ...

    def next_part(self, size: int) -> InboundUnit:
        """The next part of the large file in hand."""
        ...

    def claim_and_read(self, name: str, size: int) -> InboundUnit | None:
        """The unit of the waiting file ``name`` (claimed), or ``None`` when it is left."""
        ...


class Gathering:
    """The taking side of ``FolderSource.following``."""

    def __init__(self, source: Taker, max_records: int, until: float) -> None:
        self._source = source
        self._max = max_records
        self._until = until
        self._names: list[tuple[str, int]] = []  # with their sizes, oldest last
        self._left: set[str] = set()
        self._looked = False
        self._batch_ends = False  # a large file's part or a suspect ends the batch

    def _more(self) -> bool:
        return bool(self._names) or self._source.has_open_parts()

    def suspect_next(self) -> bool:
        """The next file to claim is a suspect: a take that stopped before it, with nothing
        taken, waits for the hand to be empty (``FolderSource.following``)."""
        return (
            bool(self._names)
            and not self._source.has_open_parts()
            and self._source.suspect(self._names[-1][0])
        )

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
        listed = self._source.waiting(warn=not self._looked)
        self._looked = True
        self._names = [
            (w.name, w.size)
            for w in listed
            if w.name not in self._left
            and not self._source.given_back(w.name)
            and not self._source.resting(w.name, w.size, w.mtime_ns)
        ]
        self._names.reverse()  # oldest last: popped first

    async def _claim(self, units: list[InboundUnit], room: int) -> int:
        """Claim up to ``FOLLOW_STEP_FILES`` listed names into ``units``, stopping once they
        hold ``room`` records; how many they hold. A large file is read and decoded in a worker
        thread: on the loop's thread it would hold up everything else (a signal, for one). A
        large file's part, or a suspect (in hand at a crash), ends the batch; a suspect is
        claimed only into an empty batch with nothing else in hand."""
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
            if source.suspect(name) and (units or not source.hand_empty()):
                self._batch_ends = True  # alone, in a later batch, with nothing else in hand
                break
            self._names.pop()
            if size > FOLLOW_INLINE_BYTES:
                unit = await asyncio.to_thread(source.claim_and_read, name, room - records)
            else:
                unit = source.claim_and_read(name, room - records)
            if unit is None:
                self._left.add(name)
                continue
            units.append(unit)
            records += max(len(unit.records), 1)
            if source.has_open_parts() or source.suspect(name):
                self._batch_ends = True
                break
        return records
