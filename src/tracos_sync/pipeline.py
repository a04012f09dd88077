"""The sync itself, written against the ports only: no MongoDB, no files, no client format.

Inbound: claim a batch of client inputs -> apply their valid records to TracOS (durably) ->
archive or quarantine the inputs. Outbound: page through unsynced TracOS work orders -> deliver
them to the client -> mark the delivered ones synced, each only if unchanged since read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import structlog

from tracos_sync.domain.dates import dated_ahead, format_instant
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import (
    ClientSink,
    ClientSource,
    InboundUnit,
    PendingExport,
    SupportsFollowing,
    UnreadableDocument,
    WorkOrderRepository,
)
from tracos_sync.refusals import RefusalTally
from tracos_sync.stopping import MOMENT_SECONDS, given_a_moment

log = structlog.get_logger("tracos_sync.pipeline")

Clock = Callable[[], datetime]
# CLIENT_CLOCK_SKEW_SECONDS's default.
DEFAULT_CLOCK_SKEW = timedelta(seconds=300)
# Told how far a run has got: (direction, items just done). For progress displays.
ProgressHook = Callable[[str, int], None]


def _no_progress(direction: str, done: int) -> None:
    """The default hook: report nothing."""


def _never() -> bool:
    return False


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RunStats:
    """The counts of one run; the summary line prints them in this order."""

    files: int = 0
    inserted: int = 0
    updated: int = 0
    stale: int = 0
    # Client records read that were our own writes coming back (an ERP that stamps them): not
    # applied, nothing changed.
    echoes: int = 0
    rejected: int = 0
    exported: int = 0
    skipped: int = 0
    requeued: int = 0
    superseded: int = 0
    deferred: int = 0
    seconds: float = 0.0
    # Of ``rejected``, the records the mapping refused (not an input that could not be read,
    # nor one TracOS would not store): what "all refused" is about. Not a count of the summary.
    refused_by_mapping: int = 0

    def as_fields(self) -> dict[str, int | float]:
        fields = asdict(self)
        del fields["refused_by_mapping"]
        fields["seconds"] = round(self.seconds, 3)
        return fields

    def counts(self) -> dict[str, int]:
        """Every count, without the duration."""
        fields = asdict(self)
        del fields["refused_by_mapping"], fields["seconds"]
        return fields

    def did_something(self) -> bool:
        return any(self.counts().values())

    def records_read(self) -> int:
        """Client records read by inbound: applied, stale, our echoes or refused."""
        return self.inserted + self.updated + self.stale + self.echoes + self.rejected

    def all_refused(self) -> bool:
        """The mapping refused records (at least one) and inbound applied none: likely a mapping
        that does not fit the client's records, not a bad record or two. An input that could
        not be read at all (truncated, not JSON, too large) is the transport's problem, not the
        mapping's: it neither makes nor spoils "all refused"."""
        # Our echoes read back are records the mapping read: they spoil "all refused" too.
        accepted = self.inserted + self.updated + self.stale + self.echoes
        return self.refused_by_mapping > 0 and accepted == 0


async def sync_inbound(
    source: ClientSource,
    repository: WorkOrderRepository,
    stats: RunStats,
    batch_size: int,
    *,
    clock: Clock = utc_now,
    progress: ProgressHook = _no_progress,
    stop: Callable[[], bool] = _never,
    follow: float = 0.0,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> None:
    """Client -> TracOS. A batch is archived (in the background, while the next one is being
    applied) only once its records are durable; on failure the batch in hand is given back.
    ``follow`` (watch mode, a source that can): go on for about that many seconds with what
    arrives meanwhile, see ``SupportsFollowing``. A record dated beyond now + ``clock_skew``
    is never applied (see ``WorkOrderRepository.apply``), whatever the connector."""
    if follow > 0 and isinstance(source, SupportsFollowing):
        batches = source.following(batch_size, follow)
    else:
        batches = source.batches(batch_size)
    archiving: asyncio.Task[None] | None = None
    refusals = RefusalTally()
    cancelled = False
    try:
        async with contextlib.aclosing(batches):
            async for units in batches:
                # Before they are applied: TracOS's own refusals are then added to the units.
                refused, refused_records = _refused_by_mapping(units)
                try:
                    await _apply_units(
                        units, repository, stats, batch_size, clock=clock, clock_skew=clock_skew
                    )
                except BaseException:
                    await source.release(units)
                    raise
                previous, archiving = archiving, None
                if previous is not None:
                    try:
                        await previous
                    except BaseException:
                        await source.release(units)  # applied, but archived next run instead
                        raise
                archiving = asyncio.create_task(_complete(source, units, stats))
                refusals.add(refused)
                stats.refused_by_mapping += refused_records
                stats.files += sum(unit.ends_input for unit in units)
                progress("inbound", len(units))
                if stop():  # shutting down: the batch in hand is done, leave the rest
                    break
    except asyncio.CancelledError:
        cancelled = True
        raise
    finally:
        if archiving is not None:
            if not cancelled:
                await archiving
            elif not await given_a_moment(archiving):
                log.warning(
                    "inbound.archives_cut",
                    reason=f"stopped while archiving; not done within {MOMENT_SECONDS:g}s: "
                    "those inputs stay claimed, applied, until recovered (then applied as stale)",
                )
    if stats.all_refused():
        reason, times = refusals.most_common()
        log.warning(
            "inbound.all_refused",
            records=stats.refused_by_mapping,
            reason=reason,
            times=times,
            hint="the mapping refused every record read: does it fit the client's records? "
            "Test it as this integration reads them: tracos-sync mapping test --integration "
            "NAME FILE... (the files quarantined in rejected/)",
        )


async def _complete(source: ClientSource, units: Sequence[InboundUnit], stats: RunStats) -> None:
    """Archive ``units``; an input another instance took back meanwhile is not this run's file:
    that instance archives it and counts it (and its refused records), so across both runs'
    summaries it is counted once."""
    await source.complete(units)
    for unit in units:
        if unit.taken_back:
            stats.files -= unit.ends_input
            stats.rejected -= unit.rejected_records


def _refused_by_mapping(units: Sequence[InboundUnit]) -> tuple[list[Problem], int]:
    """The problems of the records the mapping refused in ``units`` (each located at its
    record: a whole input that could not be read has none), and how many records they are."""
    problems = []
    records = 0
    for unit in units:
        mine = [problem for problem in unit.problems if problem.record is not None]
        problems += mine
        records += len({problem.record for problem in mine})
    return problems, records


async def _apply_units(
    units: Sequence[InboundUnit],
    repository: WorkOrderRepository,
    stats: RunStats,
    batch_size: int,
    *,
    clock: Clock,
    clock_skew: timedelta,
) -> None:
    records = [record for unit in units for record in unit.records]
    # Which unit, and which of its records, each of ``records`` is: a refusal goes back there.
    owners = [(unit, i) for unit in units for i in range(len(unit.records))]
    for start in range(0, len(records), batch_size):
        now = clock()
        chunk = records[start : start + batch_size]
        result = await repository.apply(chunk, now, not_after=now + clock_skew)
        stats.inserted += result.inserted
        stats.updated += result.updated
        stats.stale += result.stale
        for refusal in result.refused:
            unit, i = owners[start + refusal.position]
            unit.refuse(i, refusal.reason)
    stats.rejected += sum(unit.rejected_records for unit in units)
    stats.stale += sum(unit.stale for unit in units)
    stats.echoes += sum(unit.echoes for unit in units)


async def sync_outbound(
    repository: WorkOrderRepository,
    sink: ClientSink,
    stats: RunStats,
    batch_size: int,
    *,
    clock: Clock = utc_now,
    progress: ProgressHook = _no_progress,
    stop: Callable[[], bool] = _never,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> None:
    """TracOS -> client. Marks only what the sink made durable; a page's marks are written while
    the next page is read and delivered. Stops at a fatal delivery error after marking what was
    delivered before it. A work order dated beyond now + ``clock_skew`` (a typo'd year) is never
    delivered, whatever the connector: once on the client's side it would outrank the fix."""
    pages = repository.pending(batch_size)
    marking: asyncio.Task[None] | None = None
    # Superseded by a client copy dated beyond now + clock_skew: said once, at the end of the run.
    held_ahead: dict[int, datetime] = {}

    async def mark(exports: list[PendingExport], delivered: int) -> None:
        marked = await repository.mark_synced(exports, clock())
        stats.exported += marked
        progress("outbound", delivered)
        if marked < delivered:
            # Changed in TracOS after we read it: the newer version goes out in its place, next
            # run or already by an overlapping one (the sink never lets a file go back in time).
            stats.requeued += delivered - marked
            log.info("outbound.changed_during_export", count=delivered - marked)

    try:
        async with contextlib.aclosing(pages):
            async for page in pages:
                exports: list[PendingExport] = []
                for item in page:
                    if isinstance(item, UnreadableDocument):
                        stats.skipped += 1
                        log.warning(
                            "outbound.document_skipped", document=item.ref, reason=item.reason
                        )
                    elif dated_ahead(item.order.updated_at, clock(), clock_skew):
                        stats.skipped += 1
                        log.warning(
                            "outbound.document_skipped",
                            number=item.order.number,
                            reason=_ahead_reason(item.order.updated_at),
                        )
                    else:
                        exports.append(item)
                if not exports:
                    continue
                delivery = await sink.deliver([export.order for export in exports])
                for problem in delivery.refused:
                    stats.skipped += 1
                    log.warning("outbound.refused", number=problem.record, reason=problem.reason)
                if delivery.superseded:
                    # The client already holds a newer version (an overlapping run delivered it):
                    # nothing written, nothing marked; whoever wrote the newer one marks it.
                    stats.superseded += len(delivery.superseded)
                    log.info("outbound.superseded", numbers=delivery.superseded[:20])
                    now = clock()
                    held_ahead.update(
                        (number, theirs)
                        for number, theirs in delivery.superseded_by.items()
                        if dated_ahead(theirs, now, clock_skew)
                    )
                if delivery.deferred_because:
                    # Left unsynced for a later run (a lock held too long): the sink says it
                    # once per change of state, the summary counts every one.
                    log.warning(
                        "outbound.deferred",
                        count=len(delivery.deferred),
                        reason=delivery.deferred_because,
                    )
                stats.deferred += len(delivery.deferred)
                delivered = set(delivery.delivered)
                previous, marking = marking, None
                if previous is not None:
                    await previous
                marking = asyncio.create_task(
                    mark([e for e in exports if e.order.number in delivered], len(delivered))
                )
                if delivery.fatal is not None:
                    raise delivery.fatal
                if stop():
                    break
    finally:
        if marking is not None:
            await marking
        if held_ahead:
            _warn_client_copies_ahead(held_ahead)


def _ahead_reason(updated_at: datetime) -> str:
    return (
        f"updatedAt {format_instant(updated_at)} is later than now + CLIENT_CLOCK_SKEW_SECONDS:"
        " fix the date in TracOS (it goes out once it is no longer ahead)"
    )


def _warn_client_copies_ahead(held: dict[int, datetime]) -> None:
    """Superseded run after run, and never by a fix made in TracOS: the client's copy is dated
    in the future (by hand, or written by a version without the outbound clock rule)."""
    numbers = sorted(held)
    log.warning(
        "outbound.client_copy_ahead",
        count=len(numbers),
        numbers=numbers[:20],
        dates=[format_instant(held[n]) for n in numbers[:20]],
        reason="the client's copy is dated later than now + CLIENT_CLOCK_SKEW_SECONDS, so no "
        "version from TracOS replaces it: remove or fix the client's copy",
    )


class Stopwatch:
    def __init__(self) -> None:
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._start
