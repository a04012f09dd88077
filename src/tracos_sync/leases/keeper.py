"""The lease keeper of one replica: which integrations it serves, decided with the others through
the lease store alone (no messages between replicas, no consensus of our own).

Every ``TTL / 3`` seconds it first asks its guard whether it may serve at all (no replica of
another LEASE_COLLECTION serves the same TracOS collections: ``collection_guard``; otherwise it
holds nothing and records no heartbeat), then records its heartbeat (with the integrations it knows
and its TTL), reads the live replicas, renews the leases it holds, gives back those beyond its fair
share and takes free or expired ones up to it (``tracos_sync.leases.shares``: between ``floor`` and
``ceil(integrations / live replicas)``, so that a replica that joins gets its share; the
integrations only some replicas know are shared among those alone, the same way). A lease not
renewed in time is lost: its fence is closed, then its work stopped, before anything else. Work is
always stopped before its lease is given back, and started only once its lease is taken.

The holder's own deadline is kept on the monotonic clock, never the wall clock: the instant a
renewal was *sent* plus ``DEADLINE_SHARE`` of the TTL. The store judges expiry by its own clock
from the instant it *received* the renewal, later, so the holder always stops before anyone may
take over, whatever the hosts' clocks say.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Sequence

import structlog

from tracos_sync.domain.errors import SyncError
from tracos_sync.domain.fence import Fence
from tracos_sync.domain.ports import (
    Lease,
    LeaseRecord,
    LeaseStore,
)

from .collection_guard import CollectionGuard
from .disagreement import Disagreement
from .serving import Share, Work
from .shares import Plan, plan

log = structlog.get_logger("tracos_sync.leases")

# Renewals per TTL: one every TTL / RENEWALS, so that two may fail before the lease is lost.
RENEWALS = 3
# The share of the TTL a holder may write for after sending a renewal: a margin for the rate of
# its clock against the store's, and for an insert on its way.
DEADLINE_SHARE = 0.9


TAKES_AT_ONCE = 16  # leases asked for at once by a round


class LeaseKeeper:
    def __init__(
        self,
        store: LeaseStore,
        names: Sequence[str],
        replica: str,
        ttl: float,
        *,
        work: Work,
        clock: Callable[[], float] = time.monotonic,
        guard: CollectionGuard | None = None,
    ) -> None:
        """``guard``: whether this replica may serve at all (no replica of another lease
        collection serves the same TracOS collections); asked first in every round."""
        self._store = store
        self._guard = guard
        self._beating = False
        self._names = list(names)
        self.replica = replica
        self._ttl = ttl
        self._work = work
        self._clock = clock
        self.fences: dict[str, Fence] = {}
        self._failing = False
        # After an outage: the live replicas seen before it, and until when they still count.
        self._seen_live = 1
        self._recount_after = -math.inf
        self._disagreement = Disagreement(replica, names, ttl)
        # Where this replica starts looking for free leases: replicas starting together try
        # different ones first instead of racing for the same.
        digest = hashlib.sha256(replica.encode()).digest()
        self._offset = int.from_bytes(digest[:4], "big") % max(1, len(self._names))

    @property
    def interval(self) -> float:
        return self._ttl / RENEWALS

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop``; then every lease is given back and the heartbeat removed."""
        try:
            while not stop.is_set():
                # Rounds begin every interval, however long one took: a lease taken late in a
                # long round is renewed an interval after that round began, not after it ended.
                began = self._clock()
                share = await self.round()
                if share is not None and share.more:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), began + self.interval - self._clock())
        finally:
            await self.leave()

    async def round(self) -> Share | None:
        """One round; None when the store could not be reached (held leases are kept until
        their deadline, then lost)."""
        await self._drop_expired()
        try:
            # First: on a loaded store every round trip before it would cut into the leases'
            # time (renewals answered after their deadline cost the integration a TTL).
            await self._renew_all()
            if self._guard is not None and not await self._guard.may_serve():
                await self._stand_aside()
                return Share(0, 0, ())
            await self._store.beat(self.replica, self._ttl, self._names)
            self._beating = True
            replicas = await self._store.replicas()
            if self._failing:
                log.info("lease.store_available", replica=self.replica)
                # The others reconnect in their own next round: until a TTL has passed, the
                # replicas seen before the outage still count, or the first one back would
                # count itself alone and take everything.
                self._recount_after = self._clock() + self._ttl
            self._failing = False
            self._disagreement.see(replicas)
            leases = await self._store.leases()
            recounting = self._clock() < self._recount_after
            at_least = self._seen_live if recounting else 1
            shares = plan(self.replica, self._names, replicas, leases, at_least=at_least)
            if not recounting:
                self._seen_live = len(replicas)
            await self._give_back(shares)
            more = await self._take(shares, leases)
        except SyncError as exc:
            if not self._failing:
                log.warning("lease.store_failing", replica=self.replica, error=str(exc))
            self._failing = True
            await self._drop_expired()
            return None
        return Share(shares.live, shares.ceiling, tuple(sorted(self.fences)), more)

    async def leave(self) -> None:
        """Stop every integration's work, give its lease back, remove the heartbeat (best
        effort: a lease not given back expires)."""
        await asyncio.gather(*(self._release(name, "stopping") for name in sorted(self.fences)))
        with contextlib.suppress(SyncError):
            await self._store.leave(self.replica)
        if self._guard is not None:
            with contextlib.suppress(SyncError):
                await self._guard.leave()

    async def _stand_aside(self) -> None:
        """Another lease collection serves these TracOS collections: hold nothing, and do not
        count among this lease collection's live replicas (the others take its share)."""
        reason = "replicas of another LEASE_COLLECTION serve these TracOS collections"
        await asyncio.gather(*(self._release(name, reason) for name in sorted(self.fences)))
        if self._beating:
            await self._store.leave(self.replica)
            self._beating = False

    # -- one round's steps -----------------------------------------------------------------

    async def _drop_expired(self) -> None:
        """Each at once: stopping one integration's work must not hold up the others'."""
        await asyncio.gather(
            *(
                self._lost(
                    name,
                    "a write found it taken over or expired"
                    if fence.lost
                    else "not renewed in time",
                )
                for name, fence in list(self.fences.items())
                if not fence.writable()
            )
        )

    async def _lost(self, name: str, reason: str) -> None:
        fence = self.fences.pop(name, None)
        if fence is None:
            return
        fence.lose()  # before the work stops: no write on its strength goes out from now on
        await self._work.stop(name)
        log.warning(
            "lease.lost",
            integration=name,
            replica=self.replica,
            epoch=fence.epoch,
            reason=reason,
        )

    async def _renew_all(self) -> None:
        """Every lease in one call to the store, and every one lost stopped at once: stopping
        one lease's work takes up to its grace, and renewing or stopping one after another
        would let the leases further down the list expire meanwhile (seen with 15 leases on a
        busy host: each loss cost the next lease, until all were lost)."""
        fences = [(name, self.fences[name]) for name in sorted(self.fences)]
        if not fences:
            return
        sent = self._clock()
        answers = await self._store.renew([fence.lease for _, fence in fences], self._ttl)
        reasons = [
            self._renewed(name, fence, renewed, sent)
            for (name, fence), renewed in zip(fences, answers, strict=True)
        ]
        await asyncio.gather(
            *(
                self._lost(name, reason)
                for (name, _), reason in zip(fences, reasons, strict=True)
                if reason
            )
        )

    def _renewed(self, name: str, fence: Fence, renewed: Lease | None, sent: float) -> str | None:
        """What the store answered for ``name``'s lease, renewal ``sent`` at that instant; why
        it is lost when it is (its fence closed at once)."""
        if renewed is None:
            fence.lose()
            return "taken over or expired in the store"
        if not fence.writable():
            # The answer came too late: the work may already have been told to stop.
            fence.lose()
            return "renewed after its deadline"
        left = fence.deadline - sent  # of the lease's time when the renewal was sent
        fence.renewed(renewed, sent + self._ttl * DEADLINE_SHARE)
        if left < self._ttl / RENEWALS:
            log.warning(
                "lease.renewed_late",
                integration=name,
                replica=self.replica,
                epoch=renewed.epoch,
                left=round(left, 2),
            )
        return None

    async def _give_back(self, shares: Plan) -> None:
        names = shares.to_give_back(self.fences)
        if not names:
            return

        def reason(name: str) -> str:
            group = shares.groups[name]
            return (
                f"fair share: {group.floor} to {group.ceiling} each of {len(group.names)} "
                f"for the {len(group.replicas)} live replicas that know them"
            )

        await asyncio.gather(*(self._release(name, reason=reason(name)) for name in names))

    async def _release(self, name: str, reason: str) -> None:
        fence = self.fences.pop(name, None)
        if fence is None:
            return
        # Still held: the batch in hand may finish under it; closed once the work has stopped.
        stopped = await self._work.stop(name)
        fence.lose()
        given = False
        if stopped:  # a work still ending might yet write: its lease is left to expire instead
            with contextlib.suppress(SyncError):
                given = await self._store.give_back(fence.lease)
        log.info(
            "lease.given_back",
            integration=name,
            replica=self.replica,
            epoch=fence.epoch,
            reason=reason if given else f"{reason} (left to expire)",
        )

    async def _take(self, shares: Plan, leases: Sequence[LeaseRecord]) -> bool:
        """Takes what this replica may, TAKES_AT_ONCE at a time, for at most half an interval:
        True when some are left to the next round. Each lease taken starts its work, which
        loads the process: taking hundreds in one round outlasted the deadline of the first
        ones taken, before the next round could renew them (300 integrations on one replica
        lost and took leases in waves)."""
        records = {record.name: record for record in leases}
        order = self._names[self._offset :] + self._names[: self._offset]
        wanted: list[str] = []
        for name in order:
            record = records.get(name)
            # Live and another's: not free. Live and ours but not held here (a renewal that
            # came back after its deadline stopped its work): taken again at once, with the
            # next epoch, rather than left unserved until it expires.
            if name in self.fences or (
                record is not None and record.live and record.holder != self.replica
            ):
                continue
            if shares.may_take(name, [*self.fences, *wanted]):
                wanted.append(name)
        # A few at once: alone on hundreds of integrations, a replica holds them in seconds.
        began = self._clock()
        for start in range(0, len(wanted), TAKES_AT_ONCE):
            chunk = wanted[start : start + TAKES_AT_ONCE]
            sent = self._clock()
            if start and sent - began >= self.interval / 2:
                return True
            answers = await asyncio.gather(
                *(self._store.take(name, self.replica, self._ttl) for name in chunk),
                return_exceptions=True,
            )
            for name, answer in zip(chunk, answers, strict=True):
                if isinstance(answer, Lease):
                    record = records.get(name)
                    await self._taken(answer, sent, record.holder if record else None)
            failed = next((a for a in answers if isinstance(a, BaseException)), None)
            if failed is not None:
                raise failed
        return False

    async def _taken(self, lease: Lease, sent: float, previous: str | None) -> None:
        fence = Fence(lease, sent + self._ttl * DEADLINE_SHARE, self._clock)
        self.fences[lease.name] = fence
        log.info(
            "lease.taken",
            integration=lease.name,
            replica=self.replica,
            epoch=lease.epoch,
            **({"from": previous} if previous and previous != self.replica else {}),
        )
        await self._work.start(lease.name, fence)
