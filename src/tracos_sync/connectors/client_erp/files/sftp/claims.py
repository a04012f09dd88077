"""This instance's claim folder on the SFTP server (``<inbound>/.tracos-claims/<instance>/``):
files are claimed into it by one rename that never replaces, its time is the server's clock and
this instance's heartbeat, and claim folders of instances silent for ``CLAIM_STALE_SECONDS``
are recovered (their files put back, or removed when already archived).

Crash loops are contained as in a local folder (``files/claims.py``): each file put back from a
dead instance's folder is noted as a suspect beside the claim folders (``suspect-<hash>.json``)
and taken alone; one noted at a crash and in hand again at the next one (crashes are numbered by
a ``crashes-<hash>.json`` note) is quarantined in rejected/ as suspected poison instead."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import PurePosixPath

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.text import printable

from ..claims import POISON_REASON
from ..fsnames import fit_name, free_names
from ..store import FileStore, StoreUnavailable
from .answers import is_temp
from .archiving import NAME_MAX, Archives, Claimed
from .notes import SftpNotes, identity

log = structlog.get_logger("tracos_sync.files.sftp")

CLAIMS = ".tracos-claims"
# A dead instance's claim folder being recovered: ``<its name>~r<random>``.
RECOVERING = "~r"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A file this instance's recovery quarantined as suspected poison (``archived_as`` in
    rejected/): taken by this instance, though never in hand."""

    name: str
    archived_as: str


def token() -> str:
    return secrets.token_hex(4)


def instance_name() -> str:
    """This instance's claim folder: host, pid and a random part (pids are reused)."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    return f"{host[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


class SftpClaims:
    """Our claim folder under ``inbound``, and the recovery of dead instances' ones."""

    def __init__(
        self, store: FileStore, inbound: PurePosixPath, archives: Archives, stale_seconds: float
    ) -> None:
        self._store = store
        self._archives = archives
        self._stale_seconds = stale_seconds
        self.root = inbound / CLAIMS
        self.folder = self.root / instance_name()
        self.now = 0.0  # the server's clock, read from our claim folder's time
        self._beating: asyncio.Task[None] | None = None
        self._suspects = SftpNotes(store, self.root, "suspect")
        self._crashes = SftpNotes(store, self.root, "crashes")
        # Files noted as in hand when an instance died (as of the last recovery): taken alone.
        self.suspects: set[str] = set()
        # Quarantined by this instance's recovery, until a batch counts them.
        self.quarantined: list[Quarantined] = []

    def keep_alive(self) -> None:
        """Our claim folder touched every quarter of ``CLAIM_STALE_SECONDS`` from now until
        :meth:`stop`, whatever a batch is waiting on (a slow database, a large file): files in
        hand are never taken back from a live instance."""
        if self._beating is None:
            self._beating = asyncio.create_task(self._beat(), name="sftp-claim-heartbeat")

    async def stop(self) -> None:
        beating, self._beating = self._beating, None
        if beating is not None:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._stale_seconds / 4)
            try:
                await self.heartbeat()
            except OSError as exc:
                # Said, and tried again at the next beat; the sweep's own heartbeat fails the
                # direction if the server stays away.
                log.warning(
                    "sftp.heartbeat_failed", folder=printable(str(self.folder)), reason=str(exc)
                )

    async def heartbeat(self) -> None:
        """Our claim folder's time refreshed; that time is the server's now."""
        try:
            self.now = await self._store.touch(self.folder)
        except FileNotFoundError:
            await self._recreate_claims()
            self.now = await self._store.touch(self.folder)

    async def recover(self) -> None:
        """Claim folders of instances dead for ``CLAIM_STALE_SECONDS``: their files put back
        and noted as suspects, or quarantined as suspected poison when noted at the crash just
        before (in hand at two consecutive crashes)."""
        stale_before = self.now - self._stale_seconds
        for folder in await self._store.scan(self.root):
            path = self.root / folder.name
            if folder.kind != "folder" or path == self.folder or folder.mtime > stale_before:
                continue
            # Taken by one rename to a name of its own, and touched: of several instances
            # recovering at once, one recovers it (one crash counted, one note per file), and
            # a recoverer that dies half-way leaves it to be recovered again once stale.
            taken = self.root / f"{folder.name.partition(RECOVERING)[0]}{RECOVERING}{token()}"
            try:
                await self._store.move_no_clobber(path, taken)
                await self._store.touch(taken)
                entries = await self._store.scan(taken)
            except FileNotFoundError:
                continue  # recovered by another instance meanwhile
            path = taken
            crash = await self._count_crash()
            for entry in entries:
                claimed = Claimed(entry.name, path / entry.name, entry)
                if is_temp(entry.name):  # a heartbeat the kill cut: no client file
                    with contextlib.suppress(OSError):
                        await self._store.unlink(claimed.path)
                    continue
                try:
                    if await self._archives.already_archived(claimed):
                        await self._store.unlink(claimed.path)
                        log.info("sftp.claim_archived_before", file=printable(entry.name))
                        continue
                    await self._recover_file(claimed, folder.name, crash)
                except FileNotFoundError:
                    continue  # another instance recovering the same claims moved it first
            with contextlib.suppress(OSError):
                await self._store.rmdir(path)

    async def put_back_own(self, kept: set[str]) -> None:
        """The files in our own claim folder that this instance no longer has in hand (called
        when it has none), but those in ``kept``: left by a take or a give-back that a server
        gone away cut short. Put back now (or removed when their archive move had landed), not
        once this instance is gone and its folder stale. One that cannot be moved joins
        ``kept`` (said once; put back by another instance's recovery)."""
        for entry in await self._store.scan(self.folder):
            if entry.name in kept or entry.kind != "file" or is_temp(entry.name):
                continue
            claimed = Claimed(entry.name, self.folder / entry.name, entry)
            try:
                if await self._archives.already_archived(claimed):
                    await self._store.unlink(claimed.path)
                    log.info("sftp.claim_archived_before", file=printable(entry.name))
                    continue
                back = await self._archives.put_back(claimed)
            except FileNotFoundError:
                continue  # taken back by another instance's recovery
            except StoreUnavailable:
                raise
            except OSError as exc:
                kept.add(entry.name)
                log.warning("sftp.claim_kept", file=printable(entry.name), reason=str(exc))
                continue
            log.warning(
                "sftp.claim_put_back",
                file=printable(entry.name),
                to=printable(back),
                reason="left in this instance's claim folder, not in hand: a take or a "
                "give-back cut short by the server going away",
            )

    async def load_suspects(self) -> None:
        """The files noted as suspects, by whichever instance recovered them. Looked at after
        the inbound folder is listed: a file put back by another instance's recovery is noted
        before it is put back, so every suspect listed is known (and its note forgotten when it
        is archived)."""
        try:
            listed = await self._store.scan(self.root)
        except StoreUnavailable:
            raise
        except OSError as exc:  # hints: the last ones known are kept
            log.warning("sftp.suspects_unread", folder=printable(str(self.root)), reason=str(exc))
            return
        self.suspects = await self._suspects.names(listed)

    async def _count_crash(self) -> int:
        """The number of the crash being recovered: one more than the last (a hint shared by
        the instances on this folder, like the notes)."""
        note = await self._crashes.get("count")
        last = note.get("count") if note is not None else 0
        crash = (last if isinstance(last, int) else 0) + 1
        with contextlib.suppress(OSError):
            await self._crashes.put("count", {"count": crash})
        return crash

    async def _recover_file(self, claimed: Claimed, claim: str, crash: int) -> None:
        """Put back one file of a dead instance and note it as a suspect; quarantine it if it
        was noted, as the same file, at the crash just before this one."""
        name = claimed.name
        now = identity(claimed.seen)
        note = await self._suspects.get(name)
        if note is not None and note.get("identity") == now and note.get("crash") == crash - 1:
            try:
                archived = await self._archives.reject(claimed, [Problem("$", POISON_REASON)])
            except StoreUnavailable:
                raise
            except FileNotFoundError:
                raise
            except OSError as exc:  # put back as any other; quarantined at a later crash
                log.error("inbound.poison_quarantine_failed", file=printable(name), reason=str(exc))
            else:
                with contextlib.suppress(OSError):
                    await self._suspects.forget(name)
                self.suspects.discard(name)
                self.quarantined.append(Quarantined(name, archived))
                log.error(
                    "inbound.file_rejected",
                    file=printable(name),
                    archived_as=printable(archived),
                    problems=1,
                    first=f"$: {POISON_REASON}",
                )
                return
        # Noted before it is put back: another instance may take it and archive it at once,
        # and its archive forgets the note; a note written after that would outlive the file.
        suspect = {"identity": now, "crash": crash}
        with contextlib.suppress(OSError):  # a hint only
            await self._suspects.put(name, suspect)
        back = await self._archives.put_back(claimed)
        if back != name:  # put back beside a file of its name: the note follows it
            with contextlib.suppress(OSError):
                await self._suspects.put(back, suspect)
                await self._suspects.forget(name)
        self.suspects.add(back)
        log.warning(
            "sftp.claim_recovered",
            file=printable(name),
            to=printable(back),
            reason=f"claimed by an instance silent for over {self._stale_seconds:g}s ({claim})",
            note="taken alone next; quarantined if in hand at the next crash too",
        )

    async def forget(self, name: str) -> None:
        """Archived: no longer a suspect (a request only for a file noted as one)."""
        if name in self.suspects:
            self.suspects.discard(name)
            with contextlib.suppress(OSError):
                await self._suspects.forget(name)

    def take_quarantined(self) -> list[Quarantined]:
        """What recovery quarantined as suspected poison and no batch has counted yet."""
        taken, self.quarantined = self.quarantined, []
        return taken

    async def claim(self, claimed: Claimed) -> bool:
        """``claimed`` moved into our claim folder, beside (never over) a file of the same name
        still in hand there; ``False`` when it is not ours to take (another instance took it
        first, or it cannot be moved)."""
        source = claimed.path
        for candidate in free_names(claimed.name):
            target = self.folder / fit_name(candidate, NAME_MAX)
            try:
                await self._store.move_no_clobber(source, target)
            except FileExistsError:
                continue  # a file of this name still in hand (its archive failed)
            except FileNotFoundError:
                if await self._claim_folder_gone():
                    continue  # recreated: tried again
                return False  # another instance took it first
            except StoreUnavailable as exc:
                raise DestinationUnwritable(str(exc)) from exc
            except OSError as exc:
                log.warning("inbound.unreadable", file=printable(claimed.name), reason=str(exc))
                return False
            claimed.path = target
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    async def _claim_folder_gone(self) -> bool:
        """Whether our claim folder had been removed (and is now made again)."""
        try:
            await self._store.stat(self.folder)
        except FileNotFoundError:
            await self._recreate_claims()
            return True
        return False

    async def _recreate_claims(self) -> None:
        log.warning(
            "sftp.claim_folder_recreated",
            folder=printable(str(self.folder)),
            reason="removed by someone else (client housekeeping, or another instance's "
            "recovery); made again",
        )
        await self._store.mkdir(self.folder)
