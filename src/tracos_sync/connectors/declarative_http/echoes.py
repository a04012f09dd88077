"""Our own writes, told apart from the ERP's changes when they come back on the next read.

A real ERP stamps its own last-change time (and ETag) on every write, ours included, so the
record we wrote comes back on the next read as a change. Taken for a client edit, it would be
applied to TracOS again (and, a time later than TracOS's, could hide a real TracOS edit made in
between), and a real client edit made right after our write must not be mistaken for our echo.

Per key (the record's key as the ERP writes it), what we wrote: the content's hash (the record
as the mapping writes it, its server-stamped last-change time left out: ``content_hash``) and the
version the ERP answered our write with. A record read is our echo when its version is the one
our write got back (the ERP says nothing changed since) or its content is what we wrote (a
client "edit" that leaves it as we wrote it changes nothing TracOS does not hold). Anything else
is a change, even one made a millisecond after ours: its entry is dropped then (the ERP has moved
on). The last ``HISTORY`` writes of a key are kept, so that a read that overtook our second
write (it shows the first) is still known for ours.

The version of each key, read or written, is what the writer sends as ``If-Match``; versions
read are kept for the run only (the reader sees the whole ERP), written ones in the state.

Kept through the ``ConnectorStateStore`` as one document: loaded once, saved once per batch
written or pass read (``save``), at most ``max_entries`` keys (the oldest write dropped first: a
write never read back for that long comes back, at worst, as one change that holds what TracOS
holds). Keys are stored in a list, not as field names (a key may hold ``.`` or ``$``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import ConnectorStateStore

SCOPE = "declarative_http"
HISTORY = 4  # writes of one key remembered (a read may show any of the last few)
DEFAULT_MAX_ENTRIES = 50_000  # keys: about 100 bytes each in the state document
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def content_hash(encode: Callable[[WorkOrder], dict[str, Any]], order: WorkOrder) -> str:
    """The hash of ``order`` as ``encode`` (the mapping's) writes it, its last update left out:
    the ERP stamps its own, so that field never reads back as we wrote it."""
    record = encode(dataclasses.replace(order, updated_at=_EPOCH))
    return hashlib.blake2b(
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=12
    ).hexdigest()


@dataclasses.dataclass(slots=True)
class _Written:
    writes: list[tuple[str, str | None]]  # (content hash, version answered), oldest first
    at: str  # when last written (ISO), for dropping the oldest


class Echoes:
    """``wrote`` after each write, ``is_echo`` for each record read, ``version`` for the next
    write's ``If-Match``; ``load`` before and ``save`` after."""

    def __init__(
        self, store: ConnectorStateStore, api_url: str, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self._store = store
        self._key = f"{SCOPE}:echoes:{api_url}"
        self._max = max_entries
        self._written: dict[str, _Written] = {}
        self._read: dict[str, str] = {}  # version last read, this run
        self._dirty = False
        self._loaded = False

    async def load(self) -> None:
        """The writes remembered by earlier runs (once; later calls do nothing)."""
        if self._loaded:
            return
        self._loaded = True
        doc = await self._store.get(self._key) or {}
        for entry in doc.get("keys", []):
            try:
                key, writes, at = entry
                self._written[str(key)] = _Written(
                    [(str(h), None if v is None else str(v)) for h, v in writes], str(at)
                )
            except (TypeError, ValueError):
                continue  # an entry of another shape: that key's echo is read as a change once

    async def save(self) -> None:
        """Store what changed since the last save (nothing to do: no write)."""
        if not self._dirty:
            return
        keys = [
            [key, [list(w) for w in entry.writes], entry.at] for key, entry in self._written.items()
        ]
        await self._store.put(self._key, {"keys": keys})
        self._dirty = False

    def wrote(self, key: str, content: str, version: str | None) -> None:
        """We wrote ``content`` (``content_hash``) to ``key``; the ERP answered ``version``."""
        entry = self._written.pop(key, None) or _Written([], "")
        entry.writes = [*entry.writes, (content, version)][-HISTORY:]
        entry.at = datetime.now(UTC).isoformat()
        self._written[key] = entry  # last in the dict: the newest, dropped last
        self._read.pop(key, None)  # our write's answer is newer than any read
        while len(self._written) > self._max:
            del self._written[next(iter(self._written))]
        self._dirty = True

    def wrote_to(self, key: str) -> bool:
        """Whether we remember a write to ``key``: only then can a record read there be ours
        (and is its content worth hashing)."""
        return key in self._written

    def is_echo(self, key: str, content: str, version: str | None) -> bool:
        """Whether the record read at ``key`` (its ``content_hash`` and version) is one of our
        writes coming back. Its version becomes the one the next write sends; a change drops
        what we wrote to that key (the ERP has moved past it)."""
        entry = self._written.get(key)
        echo = entry is not None and any(
            content == written or (version is not None and version == answered)
            for written, answered in entry.writes
        )
        if version is not None:
            self._read[key] = version
        if entry is not None and not echo:
            del self._written[key]
            self._dirty = True
        return echo

    def version(self, key: str) -> str | None:
        """The ERP's version of ``key`` as we last saw it (read this run, or our last write's
        answer), or None: unknown."""
        read = self._read.get(key)
        if read is not None:
            return read
        entry = self._written.get(key)
        return entry.writes[-1][1] if entry is not None else None

    def superseded(self, key: str) -> None:
        """The ERP refused a write to ``key`` as superseded: what we knew of it is stale."""
        self._read.pop(key, None)
        if self._written.pop(key, None) is not None:
            self._dirty = True
