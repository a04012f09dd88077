"""The pipeline against fakes of its ports: no database, no folders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from tests.builders import T0, tracos_doc
from tests.fakes import InMemoryWorkOrderRepository
from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import Delivery, InboundUnit
from tracos_sync.pipeline import RunStats, sync_inbound, sync_outbound
from tracos_sync.stopping import MOMENT_SECONDS


def order(number: int) -> WorkOrder:
    return WorkOrder(number, Status.PENDING, "t", T0 - timedelta(days=1), T0)


class ListSource:
    """A ``ClientSource`` over units held in memory; records what happened to each."""

    def __init__(self, batches: list[list[InboundUnit]], fail_complete: int | None = None):
        self._batches = batches
        self._fail_complete = fail_complete
        self.completed: list[str] = []
        self.released: list[str] = []
        self.handed = 0

    async def prepare(self) -> None: ...

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        for batch in self._batches:
            self.handed += 1
            yield batch

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        if self._fail_complete is not None and units[0].name == f"u{self._fail_complete}":
            raise DestinationUnwritable("archive folder gone")
        self.completed += [u.name for u in units]

    async def release(self, units: Sequence[InboundUnit]) -> None:
        self.released += [u.name for u in units]

    async def close(self) -> None: ...


class ListSink:
    """A ``ClientSink`` keeping what it received; fails fatally from the ``fail_at``-th order."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.received: list[int] = []
        self._fail_at = fail_at

    async def prepare(self) -> None: ...

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        delivery = Delivery()
        for o in orders:
            if self._fail_at is not None and len(self.received) >= self._fail_at:
                delivery.fatal = DestinationUnwritable("disk full")
                break
            self.received.append(o.number)
            delivery.delivered.append(o.number)
        return delivery

    async def close(self) -> None: ...


def units(n: int) -> list[list[InboundUnit]]:
    return [[InboundUnit(f"u{k}", [order(k)])] for k in range(1, n + 1)]


async def test_inbound_applies_then_archives_every_batch() -> None:
    repo, source, stats = InMemoryWorkOrderRepository(), ListSource(units(3)), RunStats()
    progress: list[tuple[str, int]] = []
    await sync_inbound(source, repo, stats, 10, progress=lambda d, n: progress.append((d, n)))
    assert source.completed == ["u1", "u2", "u3"] and not source.released
    assert (stats.files, stats.inserted) == (3, 3)
    assert progress == [("inbound", 1)] * 3


async def test_our_echoes_read_are_counted_and_a_sweep_of_them_did_something() -> None:
    """A unit's echoes (our own writes read back, left out by the source) are summed into the
    run's ``echoes``; they are records the mapping read, so they are not "all refused"."""
    echoed = InboundUnit("u1", [order(1)], echoes=2)
    refused = InboundUnit("u2", [], rejected_records=1, echoes=3)
    source, stats = ListSource([[echoed], [refused]]), RunStats()
    stats.refused_by_mapping = 1
    await sync_inbound(source, InMemoryWorkOrderRepository(), stats, 10)
    assert (stats.inserted, stats.echoes, stats.rejected) == (1, 5, 1)
    alone = RunStats(echoes=4, refused_by_mapping=1, rejected=1)
    assert alone.did_something() and alone.records_read() == 5 and not alone.all_refused()


async def test_inbound_stop_finishes_the_batch_in_hand() -> None:
    repo, source, stats = InMemoryWorkOrderRepository(), ListSource(units(5)), RunStats()
    await sync_inbound(source, repo, stats, 10, stop=lambda: True)
    assert source.completed == ["u1"] and source.handed == 1
    assert len(repo.documents) == 1


async def test_archive_failure_gives_the_applied_batch_back() -> None:
    repo, stats = InMemoryWorkOrderRepository(), RunStats()
    source = ListSource(units(3), fail_complete=1)
    with pytest.raises(DestinationUnwritable):
        await sync_inbound(source, repo, stats, 10)
    assert source.released == ["u2"], "applied, to be archived (as stale) next run"
    assert len(repo.documents) == 2


async def test_outbound_marks_what_was_delivered_before_a_fatal_error() -> None:
    repo = InMemoryWorkOrderRepository()
    for n in range(1, 6):
        repo.insert_raw(tracos_doc(n))
    sink, stats = ListSink(fail_at=3), RunStats()
    with pytest.raises(DestinationUnwritable):
        await sync_outbound(repo, sink, stats, 2)
    synced = sorted(d["number"] for d in repo.documents.values() if d.get("isSynced"))
    assert synced == sink.received == [1, 2, 3]
    assert stats.exported == 3


async def test_outbound_stop_after_a_page() -> None:
    repo = InMemoryWorkOrderRepository()
    for n in range(1, 6):
        repo.insert_raw(tracos_doc(n, updatedAt=datetime(2024, 5, 1, tzinfo=UTC)))
    sink, stats = ListSink(), RunStats()
    await sync_outbound(repo, sink, stats, 2, stop=lambda: True)
    assert sink.received == [1, 2] and stats.exported == 2


async def test_outbound_skips_orders_dated_beyond_the_injected_clock_plus_the_allowance() -> None:
    repo = InMemoryWorkOrderRepository()
    skew = timedelta(seconds=30)
    repo.insert_raw(tracos_doc(1, updatedAt=T0 + skew))  # at the edge: goes out
    repo.insert_raw(tracos_doc(2, updatedAt=T0 + skew + timedelta(milliseconds=1)))
    sink, stats = ListSink(), RunStats()
    await sync_outbound(repo, sink, stats, 10, clock=lambda: T0, clock_skew=skew)
    assert sink.received == [1] and (stats.exported, stats.skipped) == (1, 1)
    assert not (repo.by_number(2) or {}).get("isSynced")


class AheadSink(ListSink):
    """A client holding every order, dated ``held`` (newer than any TracOS version)."""

    def __init__(self, held: datetime) -> None:
        super().__init__()
        self._held = held

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        numbers = [o.number for o in orders]
        return Delivery(superseded=numbers, superseded_by=dict.fromkeys(numbers, self._held))


async def test_client_copies_dated_ahead_are_named_in_one_warning_per_run() -> None:
    repo = InMemoryWorkOrderRepository()
    for n in range(1, 6):
        repo.insert_raw(tracos_doc(n))
    stats = RunStats()
    with capture_logs() as logs:
        await sync_outbound(repo, AheadSink(T0 + timedelta(days=1)), stats, 2, clock=lambda: T0)
    [warning] = [e for e in logs if e["event"] == "outbound.client_copy_ahead"]
    assert warning["log_level"] == "warning" and warning["numbers"] == [1, 2, 3, 4, 5]
    assert stats.superseded == 5
    # Newer, but not ahead of the clock (an overlapping run's delivery): no warning.
    with capture_logs() as logs:
        await sync_outbound(repo, AheadSink(T0), RunStats(), 2, clock=lambda: T0)
    assert not [e for e in logs if e["event"] == "outbound.client_copy_ahead"]


class StalledArchives(ListSource):
    """Archives that never land, and a second batch that never comes (a server that stopped
    answering)."""

    def __init__(self) -> None:
        super().__init__(units(1))
        self.archiving = asyncio.Event()
        self.archive_cut = asyncio.Event()

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        async for batch in super().batches(max_records):
            yield batch
        await asyncio.Event().wait()

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        self.archiving.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.archive_cut.set()
            raise


async def test_a_cancelled_inbound_waits_for_its_archives_a_moment_only() -> None:
    """Hostile pass 2, F4: cancelled (a stop's grace ran out) with archives in flight on a
    server that stopped answering, the run ends within MOMENT_SECONDS: the archives
    are cut, their inputs left claimed."""
    source = StalledArchives()
    run = asyncio.create_task(sync_inbound(source, InMemoryWorkOrderRepository(), RunStats(), 1))
    await asyncio.wait_for(source.archiving.wait(), 5)  # the next batch awaited meanwhile
    start = time.monotonic()
    run.cancel()
    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 5)
    assert time.monotonic() - start < MOMENT_SECONDS + 0.5
    await asyncio.wait_for(source.archive_cut.wait(), 1)
    assert [e["event"] for e in logs] == ["inbound.archives_cut"]
