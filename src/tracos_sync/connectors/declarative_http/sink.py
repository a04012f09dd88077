"""Work orders written to an ERP's API as its description's ``[write]`` table says.

For each order: the record as the mapping writes it, sent to ``write.path`` with ``write.method``
and, when the ERP's version of that record is known (read this run, or answered to our last
write: ``Echoes``), that version as ``If-Match`` (``write.version``). Then:

- 2xx: delivered; the version the ERP answered (the ``ETag``, or the record's version field of
  the answer) and the hash of what we wrote are remembered, so that the write is known for ours
  when the next read brings it back, and the next write is conditional on it;
- a ``write.superseded`` answer (412, 409): the ERP holds a version we have not read. Counted
  superseded, never sent again as an overwrite; what we knew of that record is dropped, so the
  next write looks again (below);
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

A record the ERP holds but we know nothing of, changed there later than TracOS's copy (its
last-change time, as the mapping reads it), is a change we have not read yet: superseded, not
overwritten. Otherwise it is written conditionally on the version the ``GET`` saw, so that an
edit between the two is not overwritten either. (Our own create whose answer was lost, sent again
by the requester, is refused as existing and found newer: superseded; the next read brings it
in.)

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

from tracos_sync.domain.errors import ConfigurationError, FatalError, RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import ConnectorContext, Delivery
from tracos_sync.mapping import RecordMapping

from .description import ApiDescription, VersionSpec, WriteSpec
from .echoes import SCOPE, Echoes, content_hash
from .query import fill, join_path
from .requester import Refused, Requester, Superseded
from .selector import field_at, value_at
from .state import ConnectorState
from .versions import ErpVersions

DEFAULT_CONCURRENCY = 8
_ABSENT = (404, 410)  # a GET of one record: the ERP does not hold it
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
        """What earlier runs wrote (the echoes' state)."""
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
            self._echoes.superseded(key)
            return _Outcome(superseded=True)
        except RecordRejected as exc:
            return _Outcome(refused=exc.problems)
        self._remember(key, order, response, body)
        return _Outcome(delivered=True)

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
        self._remember(key, order, response, body)
        return _Outcome(delivered=True)

    def _remember(self, key: str, order: WorkOrder, response: httpx.Response, body: bytes) -> None:
        version = _version_of(self._write.version, response, _json(body) if body else None)
        self._echoes.wrote(key, content_hash(self._mapping.encode, order), version)

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
        document = _json(body)
        changed = self._mapping.updated_of(document)
        return _Found(_version_of(self._write.version, response, document), changed)

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


def _json(body: bytes) -> Any:
    """The answer's JSON, or None (an answer without a body, or not JSON: no version in it)."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _version_of(spec: VersionSpec | None, response: httpx.Response, document: Any) -> str | None:
    """The record's version in an answer about it: the field ``write.version.field`` of its
    body, or its ``ETag`` (also without ``write.version``: the echo guard compares it)."""
    if spec is not None and spec.source == "record" and spec.field is not None:
        found = field_at(document, spec.field)
        return None if found is None else str(found)
    etag: str | None = response.headers.get("ETag")
    return etag
