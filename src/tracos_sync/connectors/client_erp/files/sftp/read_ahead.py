"""Inbound files claimed and read ahead of the batches, in the listing's order.

Up to a window of takes (claim, read, decode) are in flight at once; each one done starts the
next, also while a batch is being applied, so that the SFTP requests of the next batch share
the time the database takes with this one (a run waited on one or the other before). What is
read and not yet handed out stays bounded: a window of files, or up to a batch of them while
their listed bytes are under ``READ_AHEAD_BYTES``. A suspect (in hand when an instance died)
is never taken here: the files before it are, then the source takes it alone."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Iterable

from tracos_sync.domain.ports import InboundUnit

from ..reading import STREAM_MIN_BYTES
from ..store import Entry

# Read and not handed out, beyond the window of files: about a batch of small files. A large
# file is counted as what is read of it at once (it is decoded a part at a time).
READ_AHEAD_BYTES = 8 * 1024 * 1024

Take = Callable[[Entry], Awaitable[InboundUnit | None]]


class ReadAhead:
    """The takes of the files listed, in order; see the module."""

    def __init__(
        self,
        listed: Iterable[Entry],
        take: Take,
        window: int,
        batch: int,
        suspect: Callable[[Entry], bool],
    ) -> None:
        self._upcoming = collections.deque(listed)
        self._take = take
        self._window = window
        self._most = max(window, batch)
        self._suspect = suspect
        self._taking: collections.deque[tuple[int, asyncio.Future[InboundUnit | None]]] = (
            collections.deque()
        )
        self._in_flight = 0
        self._held_bytes = 0  # listed bytes of the takes in ``_taking``
        self._stopped = False

    def start(self) -> None:
        """As many takes begun as the bounds allow (again as each one ends)."""
        while not self._stopped and self._in_flight < self._window and self._upcoming:
            if self._suspect(self._upcoming[0]):
                return
            held = len(self._taking)
            if held >= self._window and (
                held >= self._most or self._held_bytes >= READ_AHEAD_BYTES
            ):
                return
            entry = self._upcoming.popleft()
            weight = min(entry.size, STREAM_MIN_BYTES)
            task = asyncio.ensure_future(self._take(entry))
            self._in_flight += 1
            self._held_bytes += weight
            task.add_done_callback(self._ended)
            self._taking.append((weight, task))

    def _ended(self, _: asyncio.Future[InboundUnit | None]) -> None:
        self._in_flight -= 1
        self.start()

    def taking(self) -> bool:
        """Whether a take is begun and not yet handed out."""
        return bool(self._taking)

    def upcoming(self) -> bool:
        """Whether a file listed is not taken yet."""
        return bool(self._upcoming)

    def next_suspect(self) -> Entry | None:
        """The suspect next in line, taken off the list, once nothing before it is in hand."""
        if self._taking or not self._upcoming or not self._suspect(self._upcoming[0]):
            return None
        return self._upcoming.popleft()

    async def next(self) -> InboundUnit | None:
        """The first take's unit (``None``: not ours to take now); only when ``taking()``."""
        weight, task = self._taking[0]
        # Waited for, not awaited: a stop meanwhile leaves the take to finish (see ``stop``).
        await asyncio.wait([task])
        self._taking.popleft()
        self._held_bytes -= weight
        self.start()
        return task.result()

    async def stop(self) -> list[InboundUnit]:
        """No take begun any more; those begun let finish (a claim cut halfway would leave
        its file in our claim folder until it is stale): their units."""
        self._stopped = True
        tasks = [task for _, task in self._taking]
        self._taking.clear()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [unit for unit in done if isinstance(unit, InboundUnit)]
