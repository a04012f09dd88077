"""What we know of each record of the ERP between runs: our own writes, told apart from the ERP's
changes when a read brings them back, and the ERP's version last applied to TracOS.

**Our writes.** A real ERP stamps its own last-change time (and ETag) on every write, ours
included, so the record we wrote comes back on the next read as a change. Taken for a client
edit, it would be applied to TracOS again (and, a time later than TracOS's, could hide a real
TracOS edit made in between). Per key (the record's key as the ERP writes it) we keep what we
wrote: the content's hash (the record as the mapping writes it, its server-stamped last-change
time left out: ``content_hash``), the version the ERP answered, and TracOS's last update of the
order written. A record read is **our echo** only if it is what one of our writes made:

- when the ERP gives versions (the record's version field, or our write's ``ETag``), its version
  is the one a write of ours got back **and** its content is what that write sent (the latest
  write, or one of the few before it: a read that began before our latest write shows the one
  before; a version is never the ERP's for another state);
- without versions, its content is what our **latest** write sent.

Anything else is a change, even one made a millisecond after ours, even one that puts back a
value we wrote earlier, even our own write as the ERP normalised it (TracOS then takes the ERP's
form, once: it is marked synced, nothing goes back). A change drops what we wrote to that key
(the ERP has moved on), and says when TracOS's copy was last written by us: the ERP changed the
record **after** that, whatever its clock says (``Reading.after_our_write``).

**Applied versions.** A record dated ahead of our clock is read again every pass (the watermark
stays before it). Its version (or, without versions, its content's hash) is remembered once its
page is applied, until the watermark passes it, and a read of the same version again is
``Reading.read_again``: not applied a second time (it would overwrite a TracOS edit made since).

A record's content is hashed only where it is compared (``wrote_to``: a key we wrote to;
without versions, ``knows``: a key with a version applied remembered, or a record to remember):
the ERP's own records, most of what a pass reads, cost the guard nothing but their version.

The version of each key, read or written, is what the writer sends as ``If-Match``; versions
read are kept for the run only (the reader sees the whole ERP), written ones in the state.

Kept through the ``ConnectorStateStore`` as one document: loaded once, saved once per batch
written or pass read (``save``), at most ``max_entries`` keys (the oldest dropped first: a write
never read back for that long comes back, at worst, as one change that holds what TracOS holds).
Keys are stored in a list, not as field names (a key may hold ``.`` or ``$``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from tracos_sync.domain.dates import InvalidDate, format_instant, parse_instant
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import ConnectorStateStore

SCOPE = "declarative_http"
HISTORY = 4  # writes of one key remembered (a read may show one of the last few, by version)
DEFAULT_MAX_ENTRIES = 50_000  # keys: about 150 bytes each in the state document
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def content_hash(encode: Callable[[WorkOrder], dict[str, Any]], order: WorkOrder) -> str:
    """The hash of ``order`` as ``encode`` (the mapping's) writes it, with what an inbound
    update never sets in TracOS left out: its last update (the ERP stamps its own, so it never
    reads back as we wrote it), its creation time (CAP stamps its own on a create) and its
    description. A record that differs from ours only there changes nothing TracOS holds."""
    record = encode(
        dataclasses.replace(order, updated_at=_EPOCH, created_at=_EPOCH, description=None)
    )
    return hashlib.blake2b(
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=12
    ).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    """What a record read is to us (``Echoes.read``)."""

    echo: bool = False  # one of our writes coming back: not applied
    read_again: bool = False  # the version last applied from the ERP, read again: not applied
    # A change to a record we wrote: TracOS's last update of the order we last wrote there. The
    # ERP changed it after that moment, whatever its own clock stamped.
    after_our_write: datetime | None = None
    applied_as: str = ""  # what ``applied`` remembers of it (its version, or content's hash)


@dataclasses.dataclass(slots=True)
class _Entry:
    writes: list[tuple[str, str | None]]  # (content hash, version answered), oldest first
    written: datetime | None  # TracOS's last update of the order of our latest write
    applied: tuple[str, datetime] | None  # (version or hash, the record's stamp) last applied
    at: str  # when last touched (ISO), for dropping the oldest


def _token(content: str, version: str | None) -> str:
    return version if version is not None else f"#{content}"


class Echoes:
    """``wrote`` after each write, ``read`` for each record read, ``applied`` once its page is
    applied, ``version`` for the next write's ``If-Match``; ``load`` before and ``save`` after."""

    def __init__(
        self, store: ConnectorStateStore, api_url: str, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self._store = store
        self._key = f"{SCOPE}:echoes:{api_url}"
        self._max = max_entries
        self._entries: dict[str, _Entry] = {}
        self._read: dict[str, str] = {}  # version last read, this run
        self._applied: set[str] = set()  # the keys with a version applied remembered
        self._dirty = False
        self._loaded = False

    async def load(self) -> None:
        """What earlier runs remembered (once; later calls do nothing)."""
        if self._loaded:
            return
        self._loaded = True
        doc = await self._store.get(self._key) or {}
        for entry in doc.get("keys", []):
            try:
                key, writes, at, *rest = entry
                written = parse_instant(str(rest[0])) if rest and rest[0] else None
                applied = rest[1] if len(rest) > 1 and rest[1] else None
                self._entries[str(key)] = _Entry(
                    [(str(h), None if v is None else str(v)) for h, v in writes],
                    written,
                    None if applied is None else (str(applied[0]), parse_instant(applied[1])),
                    str(at),
                )
                if applied is not None:
                    self._applied.add(str(key))
            except (TypeError, ValueError, IndexError, InvalidDate):
                continue  # an entry of another shape: that key's echo is read as a change once

    async def save(self) -> None:
        """Store what changed since the last save (nothing to do: nothing changed)."""
        if not self._dirty:
            return
        keys = [
            [
                key,
                [list(w) for w in entry.writes],
                entry.at,
                None if entry.written is None else format_instant(entry.written),
                None
                if entry.applied is None
                else [entry.applied[0], format_instant(entry.applied[1])],
            ]
            for key, entry in self._entries.items()
        ]
        await self._store.put(self._key, {"keys": keys})
        self._dirty = False

    def wrote(self, key: str, content: str, version: str | None, updated_at: datetime) -> None:
        """We wrote ``content`` (``content_hash``) of TracOS's order last updated ``updated_at``
        to ``key``; the ERP answered ``version``."""
        entry = self._touch(key)
        entry.writes = [*entry.writes, (content, version)][-HISTORY:]
        entry.written = updated_at
        entry.applied = None  # what TracOS holds is ours now, not what was applied before
        self._read.pop(key, None)  # our write's answer is newer than any read

    def wrote_to(self, key: str) -> bool:
        """Whether we remember a write to ``key``: only then can a record read there be ours
        (and is its content worth hashing)."""
        entry = self._entries.get(key)
        return entry is not None and bool(entry.writes)

    def knows(self, key: str) -> bool:
        """Whether anything of ``key`` is remembered (a write, or a version applied): without
        versions, a record read there is then told apart by its content."""
        return key in self._entries

    def read(self, key: str, content: str, version: str | None) -> Reading:
        """What the record read at ``key`` (its ``content_hash`` and version) is: our echo, the
        version last applied read again, or a change. Its version becomes the one the next write
        sends; a change drops what we wrote to that key (the ERP has moved past it)."""
        if version is not None:
            self._read[key] = version
        token = _token(content, version)
        entry = self._entries.get(key)
        if entry is None:
            return Reading(applied_as=token)
        if entry.writes:
            if _ours(entry.writes, content, version):
                return Reading(echo=True, applied_as=token)
            after = entry.written
            entry.writes, entry.written = [], None
            self._dirty = True
            return Reading(after_our_write=after, applied_as=token)
        if entry.applied is not None and entry.applied[0] == token:
            return Reading(read_again=True, applied_as=token)
        return Reading(applied_as=token)

    def is_echo(self, key: str, content: str, version: str | None) -> bool:
        """Whether the record read at ``key`` is one of our writes coming back (``read``)."""
        return self.read(key, content, version).echo

    def applied(self, key: str, token: str, stamp: datetime) -> None:
        """The record read at ``key`` (``Reading.applied_as``, last updated ``stamp``) is
        applied to TracOS and will be read again (the watermark is before it)."""
        self._touch(key).applied = (token, stamp)
        self._applied.add(key)

    def passed(self, since: datetime) -> None:
        """The watermark is at ``since``: records stamped before it are not read again, what
        was applied of them need not be remembered."""
        for key in list(self._applied):
            entry = self._entries.get(key)
            if entry is None or entry.applied is None:
                self._applied.discard(key)  # dropped, or written since
            elif entry.applied[1] < since:
                self._applied.discard(key)
                entry.applied = None
                if not entry.writes:
                    del self._entries[key]
                self._dirty = True

    def version(self, key: str) -> str | None:
        """The ERP's version of ``key`` as we last saw it (read this run, or our last write's
        answer), or None: unknown."""
        read = self._read.get(key)
        if read is not None:
            return read
        entry = self._entries.get(key)
        return entry.writes[-1][1] if entry is not None and entry.writes else None

    def superseded(self, key: str) -> None:
        """The ERP refused a write to ``key`` as superseded: what we knew of it is stale."""
        self._read.pop(key, None)
        if self._entries.pop(key, None) is not None:
            self._dirty = True

    def _touch(self, key: str) -> _Entry:
        entry = self._entries.pop(key, None) or _Entry([], None, None, "")
        entry.at = datetime.now(UTC).isoformat()
        self._entries[key] = entry  # last in the dict: the newest, dropped last
        while len(self._entries) > self._max:
            del self._entries[next(iter(self._entries))]
        self._dirty = True
        return entry


def _ours(writes: list[tuple[str, str | None]], content: str, version: str | None) -> bool:
    """Whether a record read (``content``, ``version``) is what one of ``writes`` made: by
    version and content when both sides have a version, else by the latest write's content."""
    latest_content, latest_version = writes[-1]
    if version is not None and latest_version is not None:
        return any(v == version and c == content for c, v in writes)
    return content == latest_content
