"""The ``api`` connector's state, kept through the bootstrap's ``ConnectorStateStore``: its
watermark (one document per API, under the connector's scope) and the records refused either way
(dead letters, one entry per refusal however often it recurs)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from tracos_sync.domain.dates import InvalidDate, coerce_instant, format_instant, parse_instant
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import ConnectorStateStore, DeadLetter

from .watermark import Watermark, fingerprint

log = structlog.get_logger("tracos_sync.http")


class ConnectorState:
    def __init__(self, store: ConnectorStateStore, api_url: str, scope: str) -> None:
        # ``scope``: whose state it is (a described API's, or the present API's of ``http``).
        self._store = store
        self._scope = scope
        self._key = f"{scope}:{api_url}"

    @property
    def where(self) -> str:
        return self._store.describe()

    async def watermark(self, bound: datetime) -> Watermark:
        """The stored watermark. One that cannot be read, or that lies beyond ``bound`` and
        beyond the moment it was stored (written from a future-dated record before that was
        refused), is not trusted: reading starts again from the beginning, which TracOS's
        newer-only rule makes harmless. One beyond ``bound`` but not beyond the moment it was
        stored is kept: this host's clock stepped back since (replaying from the beginning would
        read every record again, each dated "in the future")."""
        doc = await self._store.get(self._key)
        if not doc:
            return Watermark()
        try:
            since = parse_instant(str(doc["watermark"]))
            # A watermark stored before keyset paging has no orderNo: its instant is read
            # again (what TracOS holds counts as stale).
            after = int(doc.get("afterOrderNo", 0))
        except (KeyError, TypeError, ValueError, InvalidDate):
            log.warning("http.watermark_reset", reason="stored watermark unreadable")
            return Watermark()
        if since > bound and _stored_by_then(since, doc.get("updatedAt")):
            log.warning(
                "http.clock_behind",
                watermark=format_instant(since),
                reason="the stored watermark is ahead of this host's clock, which stepped back "
                "since it was stored; kept (records dated ahead of the clock wait for it)",
            )
        elif since > bound:
            log.warning(
                "http.watermark_reset",
                reason=f"stored watermark {format_instant(since)} is in the future",
                detail="reading every record again; those TracOS holds already count as stale",
            )
            return Watermark()
        return Watermark(since, after)

    async def save(self, mark: Watermark) -> None:
        await self._store.put(
            self._key,
            {
                "watermark": mark.text,
                "afterOrderNo": mark.after,
                # Never before the watermark: one kept while the clock is behind stays trusted.
                "updatedAt": max(datetime.now(UTC), mark.since),
            },
        )

    async def refused(
        self, direction: str, ref: str, problems: Sequence[Problem], payload: Any
    ) -> int:
        """Quarantine a refused record; returns how many times this same refusal was seen."""
        letter = DeadLetter(
            self._scope, f"{direction}:{fingerprint(payload)}", direction, ref, problems, payload
        )
        return await self._store.dead_letter(letter, datetime.now(UTC))

    async def count_refused(self) -> int:
        return await self._store.count_dead_letters(self._scope)


def _stored_by_then(since: datetime, stored_at: Any) -> bool:
    """Whether the watermark ``since`` was not after the moment it was stored (as the pager
    writes them: never past the moment a page was asked for)."""
    try:
        return stored_at is not None and since <= coerce_instant(stored_at)
    except InvalidDate:
        return False
