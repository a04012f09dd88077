"""Outbound over ``PUT /workorders/{orderNo}``, a few requests at a time. A record the API
refuses is quarantined (one dead letter per refusal, counted) and stays unsynced in TracOS, so it
is offered again next run; anything fatal stops the delivery after what was delivered. An order
the mapping cannot write (``RecordRejected`` from ``encode``) is never sent: it is refused alone,
like the folder sink's, reported in ``Delivery.refused`` (logged and counted as skipped) and not
dead-lettered (there is no record to keep); it stays unsynced and is offered again next run.

The ERP's copy never goes back in time: a work order the ERP was seen to hold newer this run
(``ErpVersions``, filled by the source) is not sent, and one the ERP answers 409/412 to (its
conditional write: it holds a newer version) is not written; both are ``superseded``, neither
marked synced nor dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson

from tracos_sync.domain.errors import FatalError, RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import ConnectorContext, Delivery
from tracos_sync.mapping import RecordMapping

from .api import ErpApi, Superseded
from .settings import HttpSettings
from .state import ConnectorState
from .versions import ErpVersions

# What one PUT came to: delivered (None), refused, or fatal for the run.
Outcome = RecordRejected | FatalError | None


class HttpSink:
    """``ClientSink`` over the ERP's ``PUT``."""

    def __init__(
        self,
        settings: HttpSettings,
        mapping: RecordMapping,
        context: ConnectorContext,
        erp: ErpVersions | None = None,
    ) -> None:
        self._mapping = mapping
        self._erp = erp or ErpVersions(mapping)
        self._dry_run = context.dry_run
        self._concurrency = settings.client_api_concurrency
        self._api = ErpApi(settings)
        self._state = ConnectorState(context.state, settings.state_url())

    async def prepare(self) -> None:
        """Nothing to create: the API is there or the first request says so."""

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        delivery = Delivery()
        bodies = []
        for order in orders:
            theirs = self._erp.newer_than(order.number, order.updated_at)
            if theirs is not None:
                delivery.superseded.append(order.number)
                delivery.superseded_by[order.number] = theirs
                continue
            try:
                bodies.append((order.number, self._mapping.encode(order)))
            except RecordRejected as exc:
                # The mapping cannot write this one (a date out of its calendar): nothing to
                # send; it alone stays unsynced, reported, and the others go out.
                delivery.refused += exc.problems
        if self._dry_run:
            delivery.delivered = [number for number, _ in bodies]
            return delivery
        gate = asyncio.Semaphore(self._concurrency)

        async def send(number: int, body: bytes) -> Outcome:
            async with gate:
                try:
                    await self._api.put(number, body)
                except (RecordRejected, FatalError) as exc:
                    return exc
                return None

        outcomes = await asyncio.gather(*(send(n, orjson.dumps(b)) for n, b in bodies))
        for (number, body), outcome in zip(bodies, outcomes, strict=True):
            if outcome is None:
                delivery.delivered.append(number)
            elif isinstance(outcome, Superseded):
                delivery.superseded.append(number)
            elif isinstance(outcome, RecordRejected):
                problems = [Problem(p.path, p.reason, number) for p in outcome.problems]
                delivery.refused += problems
                try:
                    await self._state.refused("outbound", f"orderNo {number}", problems, body)
                except FatalError as exc:
                    delivery.fatal = delivery.fatal or exc
            elif delivery.fatal is None:
                delivery.fatal = outcome
        return delivery

    async def close(self) -> None:
        await self._api.close()
