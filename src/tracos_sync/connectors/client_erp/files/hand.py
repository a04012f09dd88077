"""The batches this instance handed to the consumer and has not had back: a batch is out from the
moment it is handed over until it is completed (archived or quarantined) or released (put back).

A crash suspect must be alone in hand for a crash to be blamed on it: it is claimed only when
nothing is out, and nothing else is claimed until its batch is back. Only then does the taking
wait for this; with no suspect nothing ever waits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tracos_sync.domain.ports import InboundUnit


class Hand:
    """Used on the event loop's thread only (the consumer completes and releases there)."""

    def __init__(self) -> None:
        self._out: list[Sequence[InboundUnit]] = []
        self._changed = asyncio.Event()

    def out(self, units: Sequence[InboundUnit]) -> None:
        self._out.append(units)

    def back(self, units: Sequence[InboundUnit]) -> None:
        """Completed or released; a batch that was never handed out (given back by the taking
        itself) changes nothing."""
        self._out = [batch for batch in self._out if batch is not units]
        self._changed.set()

    def empty(self) -> bool:
        return not self._out

    async def emptied(self) -> None:
        """Until every batch handed out is back."""
        while self._out:
            self._changed.clear()
            await self._changed.wait()
