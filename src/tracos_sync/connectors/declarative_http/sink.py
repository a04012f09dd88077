"""Work orders written to an ERP's API as its description's ``[write]`` table says.

For each order: the record as the mapping writes it, sent to ``write.path`` with ``write.method``
and, when the ERP's version of that record is known (read this run, or answered to our last
write: ``Echoes``), that version as ``If-Match`` (``write.version``). Then:

- 2xx: delivered; the version the ERP answered (the record's version field of the answer, or
  its ``ETag`` header when the body has none: a ``204``) and the hash of what we wrote are
  remembered, so that the write is known for ours when the next read brings it back, and the
  next write is conditional on it. Not when the answer says otherwise: with
  ``write.version.source = "record"``, a 2xx without the version (in the body or the ``ETag``)
  is no proof the ERP wrote anything (an error in a ``200``'s body), and a 2xx whose body holds
  ``write.error_path`` is an error: either is that record's refusal (dead-lettered, left
  unsynced, sent again next run);
- a ``write.superseded`` answer (412, 409): the ERP holds a version we have not read, or our
  own write moved it (its answer was lost, and the requester sent it again): the record is
  looked up, and when it holds what we wrote, it is delivered (its version remembered).
  Otherwise counted superseded, never sent again as an overwrite; what we knew of that record
  is dropped, so the next write looks again (below);
- another 4xx: that record's refusal alone: dead-lettered, left unsynced (offered again next run);
- transient answers (429, 503 with ``Retry-After``, timeouts) are retried by the requester
  within its budget; what is fatal (credentials refused, the budget spent) stops the delivery
  after the writes under way: the orders not attempted stay unsynced.

**Whether the ERP holds the record** decides between a create (``POST`` to ``write.create``)
and an update, and matters only when nothing is known of the record's version. Then the record
is most likely TracOS's new order, so it is created first: one request. A create refused (CAP
answers 400 when the key exists, an OData server 409) is followed by a ``GET`` of the record's
URL (404 or 410: the ERP does not hold it, and the create's refusal is the record's). Without
``write.create``, a conditional write needs the version first: the ``GET`` comes first. A failed
conditional write cannot tell instead: CAP, like S/4HANA, answers 412 to a conditional write to a
key it does not hold, as to a stale version, and takes no unconditional one (428).

A record the ERP holds but we know nothing of that holds what we would write is delivered (our
own create whose answer was lost, sent again by the requester and refused as existing). Changed
there later than TracOS's copy (its last-change time, as the mapping reads it), it is a change
we have not read yet: superseded, not overwritten. Otherwise it is written conditionally on the
version the ``GET`` saw, so that an edit between the two is not overwritten either.

An order the reader saw the ERP hold newer this run (``ErpVersions``: applied, stale or refused
inbound) is not sent at all: superseded, so that an ERP which ignores ``If-Match`` (or a write
without a version) never gets an older copy over its own.

Writes go concurrently, at most ``concurrency`` at a time, and in order per key (two versions of
one order in a batch are sent one after the other).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import structlog

from tracos_sync.domain.errors import ConfigurationError, FatalError, RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import ConnectorContext, Delivery
from tracos_sync.mapping import RecordMapping

from .description import ApiDescription, WriteSpec
from .echoes import SCOPE, Echoes, content_hash
from .query import fill, join_path
from .requester import Refused, Requester, Superseded
from .selector import value_at
from .state import ConnectorState
from .versions import ErpVersions
from .write_answers import json_of, version_of, written

DEFAULT_CONCURRENCY = 8
UNCONDITIONAL = (
    "the [write] table has no version: updates go without If-Match, and a change made in the "
    "ERP since we read it is overwritten; describe write.version, or set write.unconditional = "
    "true if the ERP compares versions itself or overwriting is meant"
)
_ABSENT = (404, 410)  # a GET of one record: the ERP does not hold it
log = structlog.get_logger("tracos_sync.http")
_JSON = {"Content-Type": "application/json", "Accept": "application/json"}
# RFC 3986's characters allowed in a path segment as they are; the rest of a key is escaped.
_SAFE_IN_SEGMENT = "-._~!$&'()*+,;=:@"


@dataclass(slots=True)
class _Outcome:
    """What writing one order came to (none of the flags: not attempted, a fatal error stopped
    the delivery first)."""

    delivered: bool = False
    superseded: bool = False
    superseded_by: datetime | None = None
    refused: list[Problem] = field(default_factory=list)
    fatal: FatalError | None = None


@dataclass(frozen=True, slots=True)
class _Found:
    version: str | None
    changed: datetime | None  # the ERP's last change of the record, when the mapping reads it
    content: str | None  # its ``content_hash``, when the mapping reads it


class DeclarativeSink:
    """``ClientSink`` over a described API's ``[write]``."""

    def __init__(
        self,
        api: ApiDescription,
        mapping: RecordMapping,
        requester: Requester,
        echoes: Echoes,
        context: ConnectorContext,
        *,
        dead_letters: ConnectorState | None = None,
        seen: ErpVersions | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if api.write is None:
            raise ConfigurationError("the API description has no [write] table: it is read only")
        self._write: WriteSpec = api.write
        self._root = httpx.URL(str(api.base_url))
        self._mapping = mapping
        self._number_path = tuple(mapping.number_path.removeprefix("$.").split("."))
        self._requester = requester
        self._echoes = echoes
        # Dead letters in the connector's scope, beside the reader's (one count for both ways).
        self._dead_letters = dead_letters or ConnectorState(
            context.state, str(api.base_url), scope=SCOPE
        )
        self._seen = seen or ErpVersions(mapping)
        self._dry_run = context.dry_run
        self._concurrency = concurrency
        self._stopped = False

    async def prepare(self) -> None:
        """What earlier runs wrote (the echoes' state). Updates without a version, not said to
        be meant (``write.unconditional``), are warned of once a run."""
        if self._write.version is None and not self._write.unconditional:
            log.warning("outbound.unconditional_writes", detail=UNCONDITIONAL)
        if not self._dry_run:
            await self._echoes.load()

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        delivery = Delivery()
        by_key: dict[str, list[tuple[WorkOrder, dict[str, Any]]]] = {}
        for order in orders:
            theirs = self._seen.newer_than(order.number, order.updated_at)
            if theirs is not None:
                delivery.superseded.append(order.number)
                delivery.superseded_by[order.number] = theirs
                continue
            try:
                record = self._mapping.encode(order)
            except RecordRejected as exc:
                # The mapping cannot write this one: nothing to send; it alone stays unsynced.
                delivery.refused += exc.problems
                continue
            by_key.setdefault(self._key_of(record), []).append((order, record))
        if self._dry_run:
            delivery.delivered = [order.number for items in by_key.values() for order, _ in items]
            return delivery
        await self._echoes.load()
        gate = asyncio.Semaphore(self._concurrency)

        async def in_order(
            key: str, items: list[tuple[WorkOrder, dict[str, Any]]]
        ) -> list[_Outcome]:
            outcomes = []
            for order, record in items:
                async with gate:
                    outcomes.append(
                        _Outcome() if self._stopped else await self._one(key, order, record)
                    )
            return outcomes

        results = await asyncio.gather(*(in_order(key, items) for key, items in by_key.items()))
        for (key, items), outcomes in zip(by_key.items(), results, strict=True):
            for (order, record), outcome in zip(items, outcomes, strict=True):
                await self._report(delivery, key, order, record, outcome)
        try:
            await self._echoes.save()
        except FatalError as exc:
            delivery.fatal = delivery.fatal or exc
        return delivery

    async def close(self) -> None:
        """The requester's client is this sink's own (the connector makes one per sink)."""
        await self._requester.close()

    # -- one order

    async def _one(self, key: str, order: WorkOrder, record: dict[str, Any]) -> _Outcome:
        try:
            return await self._send(key, order, record)
        except FatalError as exc:
            self._stopped = True  # the writes not begun yet stay unsynced, for a later run
            return _Outcome(fatal=exc)

    async def _send(self, key: str, order: WorkOrder, record: dict[str, Any]) -> _Outcome:
        url = self._record_url(key)
        content = orjson.dumps(record)
        version = self._echoes.version(key)
        if version is None and (self._write.create is not None or self._write.version is not None):
            found = await (
                self._create(key, order, content, url)
                if self._write.create is not None
                # No create of its own: a conditional write needs the version, a PUT to an
                # absent key (an upsert) none.
                else self._look(key, url)
            )
            if isinstance(found, _Outcome):
                return found
            if found is not None:
                if found.content == content_hash(self._mapping.encode, order):
                    return self._delivered(key, order, found.version)
                if found.changed is not None and found.changed > order.updated_at:
                    # Changed in the ERP after TracOS's copy: a change not read yet.
                    return _Outcome(superseded=True, superseded_by=found.changed)
                version = found.version
        headers = dict(_JSON)
        spec = self._write.version
        if spec is not None and version is not None:
            headers[spec.header] = spec.format.format(version=version)
        try:
            response, body = await self._requester.call(
                f"write {key}", self._write.method, url, content=content, headers=headers
            )
        except Superseded:
            return await self._superseded(key, order, url)
        except RecordRejected as exc:
            return _Outcome(refused=exc.problems)
        return self._answered(key, order, response, body)

    async def _superseded(self, key: str, order: WorkOrder, url: httpx.URL) -> _Outcome:
        """A write refused as superseded: delivered when the ERP holds what we wrote (our own
        write moved its version: the answer was lost, the requester sent it again), else
        superseded, and what we knew of the record is dropped."""
        self._echoes.superseded(key)
        found = await self._look(key, url)
        if isinstance(found, _Found) and found.content == content_hash(self._mapping.encode, order):
            return self._delivered(key, order, found.version)
        return _Outcome(superseded=True)

    async def _create(
        self, key: str, order: WorkOrder, content: bytes, url: httpx.URL
    ) -> _Outcome | _Found:
        """``POST`` to ``write.create`` (nothing known of the record: most likely a new order
        of TracOS's; one request). Refused (400 in CAP, 409 in OData: the key exists; or a
        refusal of the record), the record is looked up: what the ERP holds, to update, or the
        create's refusal when it holds nothing."""
        target = join_path(self._root, fill(self._write.create or "", {}))
        try:
            response, body = await self._requester.call(
                f"create {key}", "POST", target, content=content, headers=_JSON
            )
        except RecordRejected as exc:
            found = await self._look(key, url)
            return _Outcome(refused=exc.problems) if found is None else found
        return self._answered(key, order, response, body)

    def _answered(
        self, key: str, order: WorkOrder, response: httpx.Response, body: bytes
    ) -> _Outcome:
        """A 2xx to a write: delivered, or that record's refusal (``write_answers.written``)."""
        version, problem = written(self._write, response, body, self._requester.excerpt)
        if problem is not None:
            return _Outcome(refused=[problem])
        return self._delivered(key, order, version)

    def _delivered(self, key: str, order: WorkOrder, version: str | None) -> _Outcome:
        """The ERP holds ``order`` at ``version``: remembered, for the echo guard and the next
        write's ``If-Match``."""
        content = content_hash(self._mapping.encode, order)
        self._echoes.wrote(key, content, version, order.updated_at)
        return _Outcome(delivered=True)

    async def _look(self, key: str, url: httpx.URL) -> _Found | _Outcome | None:
        """The ERP's version and last change of ``key``; None: it does not hold it; an
        ``_Outcome`` when the look itself is refused."""
        try:
            response, body = await self._requester.call(
                f"read {key}", "GET", url, headers={"Accept": "application/json"}
            )
        except Refused as exc:
            if exc.status in _ABSENT:
                return None
            return _Outcome(refused=exc.problems)
        except RecordRejected as exc:
            return _Outcome(refused=exc.problems)
        document = json_of(body)
        changed = self._mapping.updated_of(document)
        try:
            content: str | None = content_hash(self._mapping.encode, self._mapping.decode(document))
        except RecordRejected:
            content = None  # not a record the mapping reads: not what we wrote
        return _Found(version_of(self._write.version, response, document), changed, content)

    # -- reporting

    async def _report(
        self,
        delivery: Delivery,
        key: str,
        order: WorkOrder,
        record: dict[str, Any],
        outcome: _Outcome,
    ) -> None:
        number = order.number
        if outcome.delivered:
            delivery.delivered.append(number)
        elif outcome.superseded:
            delivery.superseded.append(number)
            if outcome.superseded_by is not None:
                delivery.superseded_by[number] = outcome.superseded_by
        elif outcome.refused:
            problems = [Problem(p.path, p.reason, number) for p in outcome.refused]
            delivery.refused += problems
            try:
                # The record as the ERP would have had it, under the key it knows it by.
                await self._dead_letters.refused("outbound", key, problems, record)
            except FatalError as exc:
                delivery.fatal = delivery.fatal or exc
        elif outcome.fatal is not None and delivery.fatal is None:
            delivery.fatal = outcome.fatal

    # -- URLs and versions

    def _key_of(self, record: dict[str, Any]) -> str:
        """The record's key as the ERP writes it (``000004000123``)."""
        return str(value_at(record, self._number_path))

    def _record_url(self, key: str) -> httpx.URL:
        number = quote(key, safe=_SAFE_IN_SEGMENT)
        return join_path(self._root, fill(self._write.path, {"number": number}))
