"""Inbound files taken ahead of the batches over SFTP: in the listing's order, going on while
the consumer is away (a batch being applied), within a window in flight and a bound on what is
held, never a suspect, and every take begun let finish at a stop."""

from __future__ import annotations

import asyncio

from tracos_sync.connectors.client_erp.files.sftp.read_ahead import READ_AHEAD_BYTES, ReadAhead
from tracos_sync.connectors.client_erp.files.store import Entry
from tracos_sync.domain.ports import InboundUnit


def entry(name: str, size: int = 100) -> Entry:
    return Entry(name, size, 0.0, "file")


class Takes:
    """A take that waits a few turns, and counts how many run at once."""

    def __init__(self, turns: int = 3, refuse: frozenset[str] = frozenset()) -> None:
        self.turns = turns
        self.refuse = refuse
        self.begun: list[str] = []
        self.running = 0
        self.most_running = 0

    async def __call__(self, e: Entry) -> InboundUnit | None:
        self.begun.append(e.name)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            for _ in range(self.turns):
                await asyncio.sleep(0)
        finally:
            self.running -= 1
        return None if e.name in self.refuse else InboundUnit(e.name, [])


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def never_suspect(_: Entry) -> bool:
    return False


async def drain(ahead: ReadAhead) -> list[str | None]:
    got: list[str | None] = []
    while True:
        ahead.start()
        if not ahead.taking():
            return got
        unit = await ahead.next()
        got.append(None if unit is None else unit.name)


def test_units_come_in_the_listing_order_within_the_window() -> None:
    takes = Takes(refuse=frozenset({"3"}))
    names = [str(k) for k in range(40)]
    ahead = ReadAhead([entry(n) for n in names], takes, 4, 10, never_suspect)
    got = asyncio.run(drain(ahead))
    assert got == [None if n == "3" else n for n in names]
    assert takes.most_running == 4


def test_takes_go_on_while_the_consumer_is_away_up_to_a_batch() -> None:
    """While a batch is applied (the consumer away for a while), the next files are taken:
    up to a batch of them, a window at a time."""

    async def scenario() -> tuple[int, int]:
        takes = Takes()
        ahead = ReadAhead([entry(str(k)) for k in range(100)], takes, 4, 10, never_suspect)
        ahead.start()
        await turns(300)  # away: many turns of the loop (not wall time: a loaded machine)
        held = len(takes.begun)
        await drain(ahead)
        return held, takes.most_running

    held, most = asyncio.run(scenario())
    assert held == 10  # a batch ahead, not just the window of 4
    assert most == 4


def test_what_is_held_ahead_is_bounded_by_bytes_beyond_the_window() -> None:
    async def scenario() -> int:
        takes = Takes()
        big = READ_AHEAD_BYTES // 4
        ahead = ReadAhead([entry(str(k), big) for k in range(100)], takes, 2, 1000, never_suspect)
        ahead.start()
        await turns(300)
        held = len(takes.begun)
        await drain(ahead)
        return held

    assert asyncio.run(scenario()) == 4  # 4 x a quarter of the bound, then no more


def test_a_suspect_is_never_taken_ahead_only_handed_once_nothing_is_before_it() -> None:
    async def scenario() -> tuple[list[str | None], str | None, list[str]]:
        takes = Takes()
        listed = [entry(n) for n in ("a", "b", "suspect", "c")]
        ahead = ReadAhead(listed, takes, 4, 10, lambda e: e.name == "suspect")
        assert ahead.next_suspect() is None  # nothing taken yet, but "a" is before it
        before = await drain(ahead)
        suspect = ahead.next_suspect()
        after = await drain(ahead)
        return before + after, suspect.name if suspect else None, takes.begun

    got, suspect, begun = asyncio.run(scenario())
    assert suspect == "suspect"
    assert got == ["a", "b", "c"]
    assert "suspect" not in begun


def test_a_stop_lets_every_take_begun_finish_and_returns_their_units() -> None:
    async def scenario() -> tuple[list[str], list[str], int]:
        takes = Takes(turns=5)
        ahead = ReadAhead([entry(str(k)) for k in range(50)], takes, 4, 10, never_suspect)
        ahead.start()
        await asyncio.sleep(0)
        units = await ahead.stop()
        ahead.start()  # nothing more after a stop
        return [u.name for u in units], list(takes.begun), takes.running

    units, begun, running = asyncio.run(scenario())
    assert units == begun and len(begun) == 4
    assert running == 0


def test_a_consumer_cancelled_while_waiting_leaves_the_take_to_the_stop() -> None:
    """Cancelled while it waits for a take (a stop of the run), that take is not cut: a claim
    cut halfway would leave its file claimed until it is stale."""

    async def scenario() -> tuple[list[str], bool]:
        takes = Takes(turns=20)
        ahead = ReadAhead([entry("only")], takes, 4, 10, never_suspect)
        ahead.start()
        waiting = asyncio.ensure_future(ahead.next())
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        units = await ahead.stop()
        return [u.name for u in units], waiting.cancelled()

    assert asyncio.run(scenario()) == (["only"], True)
