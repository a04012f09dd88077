"""The outbound folder's lock on an SFTP server: the folder ``<outbound>/.tracos-outbound.lock/``,
made by one ``mkdir`` (which fails when the name is taken), holding a file with this instance's
name and its stale bound. It spans the sink's "look at the client's copy, compare versions,
rename over it", as the ``flock`` of a local outbound folder does, so that two instances never
put an older version back over a newer one.

A lease, by the server's clock: the holder rewrites its name file every quarter of
``SFTP_LOCK_STALE_SECONDS`` (a write sets its time to the server's now); a lock left unwritten
that long (the larger of the taker's and the holder's bound: ``lock_holder``) belongs to an
instance that died or froze, and is taken over by renaming the folder away under a name made
from its time (a rename that never replaces: of several instances taking over the same stale
lock, one moves it, the others find the name taken) and making a new one.

Fenced twice. The holder renames nothing once half the bound has passed since its last refresh
was sent (its own monotonic clock, checked right before each rename). And its temp files are
written inside the lock folder, each moved out over the client's file by path: a rename it sent
before it froze, which the server carries out only once it runs again (its requests wait behind
its unread answers), finds no such file in the lock folder made by the instance that took over,
and fails. What the lease assumes: the server's clock does not jump forward by more than half
the bound."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

import structlog

from tracos_sync.domain.text import printable

from ..store import Entry
from .lock_holder import HolderSaid, holder_file, read_holder_file

log = structlog.get_logger("tracos_sync.files.sftp")

LOCK_NAME = ".tracos-outbound.lock"
HOLDER = "holder"
TAKEN_SUFFIX = ".taken"
# A lock not used by any delivery for this long is let go: the pages of one run (or one sweep)
# share one lock (the next page is read from TracOS meanwhile); a watch between sweeps holds
# none, so that other instances get their turn: shorter than the shortest WATCH_INTERVAL (0.1 s;
# at 0.5 s a watch sweeping every 0.1 s never let go, G5 of the second hostile pass).
LINGER_SECONDS = 0.05
# Polling a held lock: first soon, then at most this often (each try is a few requests).
_FIRST_RETRY = 0.05
_MAX_RETRY = 0.5
# Letting go at close is a tidy-up, bounded: a stop has a grace (a lock left goes stale).
_RELEASE_SECONDS = 1.0


class LockStore(Protocol):
    """What the lock needs of the SFTP store."""

    def describe(self) -> str: ...

    async def stat(self, path: PurePosixPath) -> Entry: ...

    async def read(self, path: PurePosixPath, max_bytes: int) -> bytes: ...

    async def scan(self, folder: PurePosixPath) -> list[Entry]: ...

    async def create_exclusive(self, path: PurePosixPath, data: bytes) -> None: ...

    async def make_folder(self, path: PurePosixPath) -> None: ...

    async def touch(self, folder: PurePosixPath) -> float: ...

    async def rmdir(self, path: PurePosixPath) -> None: ...

    async def overwrite(self, path: PurePosixPath, data: bytes) -> None: ...

    async def move_no_clobber(self, source: PurePosixPath, target: PurePosixPath) -> None: ...

    async def unlink(self, path: PurePosixPath) -> None: ...


class LockLost(Exception):
    """The lease ran out (this instance was paused, or the server slow) or the lock was taken
    over: nothing more is written under it."""


class LockTimedOut(Exception):
    """The lock was not had within the deadline; ``holder`` says who holds it."""

    def __init__(self, holder: str, waited: float) -> None:
        super().__init__(f"locked by {holder} (waited {waited:.1f}s)")
        self.holder = holder
        self.waited = waited


@dataclass(eq=False)
class Held:
    """One holding of the lock, from its creation to its release or loss."""

    lease_end: float  # monotonic: no rename after this
    users: int = 1
    idle_since: float = 0.0
    lost: str = ""  # why it was lost, once it was
    releasing: bool = False
    said: bool = False  # its loss logged
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    keeper: asyncio.Task[None] | None = None

    def check(self, pace: float = 0.0) -> None:
        """Raise ``LockLost`` unless a rename may still be made under this holding: the lease
        must have at least ``pace`` seconds left (how long the file's own requests took: a
        server that answers slowly may also carry out the rename late)."""
        now = time.monotonic()
        if not self.lost and now >= self.lease_end:
            self.lost = "its lease ran out"
        elif not self.lost and now + pace >= self.lease_end:
            self.lost = (
                f"the server answers too slowly for its lease (a file took {pace:.1f}s, "
                f"{self.lease_end - now:.1f}s of the lease left)"
            )
        if self.lost:
            raise LockLost(self.lost)


class OutboundLock:
    """The lock of one outbound folder on an SFTP server, for one instance."""

    def __init__(
        self,
        store: LockStore,
        folder: PurePosixPath,
        instance: str,
        stale_seconds: float,
        timeout: float,
    ) -> None:
        self._store = store
        self._folder = folder
        self.path = folder / LOCK_NAME
        self._holder_file = self.path / HOLDER
        self._mine = holder_file(instance, stale_seconds)
        self._stale = stale_seconds
        self._lease = stale_seconds / 2
        self._timeout = timeout
        self._held: Held | None = None
        # Set when a wait ran out; until the lock is had again, a wait tries once: a frozen
        # holder costs one deadline, not one per page or per sweep.
        self._given_up = False

    async def hold(self) -> Held:
        """The lock, held until :meth:`done` (and a moment after, for the next page); waited
        for within the deadline (``LockTimedOut``). Store failures propagate (``OSError``)."""
        held = self._held
        if held is not None and held.releasing and held.keeper is not None:
            await held.keeper  # let go first, then taken again
        elif held is not None and not held.lost and time.monotonic() < held.lease_end:
            held.users += 1
            held.changed.set()
            return held
        held = await self._acquire()
        self._held = held
        held.keeper = asyncio.create_task(self._keep(held), name="sftp-outbound-lock")
        return held

    def done(self, held: Held) -> None:
        """A delivery under ``held`` ended: let go once no other follows within the linger."""
        held.users -= 1
        if held.users == 0:
            held.idle_since = time.monotonic()
            held.changed.set()

    async def close(self) -> None:
        """Let go now (bounded: a server that stopped answering leaves a lock that goes stale)."""
        held, self._held = self._held, None
        if held is None or held.keeper is None:
            return
        held.users = 0
        held.idle_since = float("-inf")
        held.changed.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_RELEASE_SECONDS):
                await held.keeper

    async def _acquire(self) -> Held:
        started = time.monotonic()
        delay = _FIRST_RETRY
        while True:
            sent = time.monotonic()
            try:
                await self._store.make_folder(self.path)
            except FileExistsError:
                pass
            else:
                self._given_up = False
                held = Held(lease_end=sent + self._lease)
                await self._store.create_exclusive(self._holder_file, self._mine)
                return held
            holder = await self._holder_or_taken_over()
            if holder is None:
                continue  # gone, or taken over by us: try again at once
            waited = time.monotonic() - started
            if self._given_up or waited >= self._timeout:
                self._given_up = True
                raise LockTimedOut(holder, waited)
            await asyncio.sleep(min(delay, max(0.0, self._timeout - waited)))
            delay = min(delay * 2, _MAX_RETRY)

    async def _last_refreshed(self, lock: PurePosixPath) -> float:
        """When the lock folder ``lock`` was last refreshed: its name file's time (the folder's
        own while it has none yet)."""
        try:
            return (await self._store.stat(lock / HOLDER)).mtime
        except FileNotFoundError:
            return (await self._store.stat(lock)).mtime

    async def _holder_or_taken_over(self) -> str | None:
        """Who holds the lock, when it is live; ``None`` when it is gone or was stale and we
        moved it away (the caller tries again at once)."""
        try:
            refreshed = await self._last_refreshed(self.path)
            holder = await self._holder()
        except FileNotFoundError:
            return None
        age = await self._store.touch(self._folder) - refreshed  # the server's now
        stale = max(self._stale, holder.stale_seconds or 0.0)  # it refreshes by its own
        if age <= stale:
            return f"instance {holder.name} (refreshed {max(age, 0):.0f}s ago)"
        # Named by the stale lock's time: a second taker of the same lock finds it taken.
        away = self._folder / f"{LOCK_NAME}.{int(refreshed)}{TAKEN_SUFFIX}"
        try:
            await self._store.move_no_clobber(self.path, away)
        except (FileExistsError, FileNotFoundError):
            return None  # another instance took it over first
        try:
            moved = await self._last_refreshed(away)
        except FileNotFoundError:
            moved = None
        if moved != refreshed:
            # A live lock made meanwhile, moved by a taker that looked long ago: put back.
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                await self._store.move_no_clobber(away, self.path)
            return None
        log.warning(
            "sftp.outbound_lock_taken_over",
            folder=printable(str(self._folder)),
            holder=holder.name,
            reason=f"not refreshed for {age:.0f}s by the server's clock, over "
            f"SFTP_LOCK_STALE_SECONDS={stale:g} (the larger of this instance's and its "
            "holder's): its holder died or froze",
        )
        return None

    async def _holder(self) -> HolderSaid:
        """Who holds the lock, and the stale bound it wrote (``lock_holder``)."""
        try:
            return read_holder_file(await self._store.read(self._holder_file, 256))
        except FileNotFoundError:
            return HolderSaid("(starting)", None)
        except OSError:
            return HolderSaid("(unreadable)", None)

    async def _keep(self, held: Held) -> None:
        """Refresh ``held`` every quarter of the stale bound while it is used; let it go once
        idle for the linger (or at close)."""
        interval = self._stale / 4
        due = time.monotonic() + interval
        while not held.lost:
            wake = min(due, held.idle_since + LINGER_SECONDS) if held.users == 0 else due
            held.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(held.changed.wait(), max(0.0, wake - time.monotonic()))
            if held.users == 0 and time.monotonic() >= held.idle_since + LINGER_SECONDS:
                await self._release(held)
                return
            if time.monotonic() >= due:
                await self._refresh(held)
                due = time.monotonic() + interval

    async def _refresh(self, held: Held) -> None:
        try:
            held.check()
            sent = time.monotonic()
            # Ours? Then rewritten (a write sets its time to the server's now). No one can take
            # it between the two: within the lease it is not stale.
            if await self._store.read(self._holder_file, 256) != self._mine:
                held.lost = "another instance took it over"
            else:
                await self._store.overwrite(self._holder_file, self._mine)
                held.lease_end = sent + self._lease
        except LockLost:
            pass
        except FileNotFoundError:
            held.lost = "it was removed (taken over, or by someone else)"
        except OSError as exc:
            # Tried again at the next beat; the lease runs out if the server stays away.
            log.warning("sftp.outbound_lock_refresh_failed", reason=str(exc))
            return
        if held.lost:
            self.said_lost(held)

    def said_lost(self, held: Held) -> None:
        """Its loss said, once."""
        if held.said:
            return
        held.said = True
        log.warning(
            "sftp.outbound_lock_lost",
            folder=printable(str(self._folder)),
            reason=f"{held.lost}: nothing more is written under it (another instance may "
            f"hold it after SFTP_LOCK_STALE_SECONDS={self._stale:g}); the files not written "
            "are left for a later run",
        )

    async def _release(self, held: Held) -> None:
        # A hold() meanwhile waits for this to end (``releasing``), then takes the lock anew.
        held.releasing = True
        try:
            held.check()  # only a lock still ours is removed
        except LockLost:
            return
        held.lost = "let go"
        try:
            await self._store.unlink(self._holder_file)
            await remove_folder(self._store, self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning(
                "sftp.outbound_lock_release_failed",
                folder=printable(str(self._folder)),
                reason=f"{exc}; it goes stale after SFTP_LOCK_STALE_SECONDS={self._stale:g}",
            )
        finally:
            if self._held is held:
                self._held = None


async def remove_folder(store: LockStore, folder: PurePosixPath) -> None:
    """A lock folder and what it holds (temp files a killed writer left)."""
    for entry in await store.scan(folder):
        with contextlib.suppress(FileNotFoundError):
            await store.unlink(folder / entry.name)
    await store.rmdir(folder)


def is_taken_lock(entry: Entry) -> bool:
    """A lock folder moved away by a take-over (removed once old)."""
    return (
        entry.kind == "folder"
        and entry.name.startswith(f"{LOCK_NAME}.")
        and entry.name.endswith(TAKEN_SUFFIX)
    )
