"""This instance's claim folder on the SFTP server (``<inbound>/.tracos-claims/<instance>/``):
files are claimed into it by one rename that never replaces, its time is the server's clock and
this instance's heartbeat, and claim folders of instances silent for ``CLAIM_STALE_SECONDS``
are recovered (their files put back, or removed when already archived)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from pathlib import PurePosixPath

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.text import printable

from ..fsnames import fit_name, free_names
from ..store import FileStore, StoreUnavailable
from .archiving import NAME_MAX, Archives, Claimed

log = structlog.get_logger("tracos_sync.files.sftp")

CLAIMS = ".tracos-claims"


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
            await self._store.touch(self.folder)
        except FileNotFoundError:
            await self._recreate_claims()
            await self._store.touch(self.folder)
        self.now = (await self._store.stat(self.folder)).mtime

    async def recover(self) -> None:
        """Claim folders of instances dead for ``CLAIM_STALE_SECONDS``: their files put back."""
        stale_before = self.now - self._stale_seconds
        for folder in await self._store.scan(self.root):
            path = self.root / folder.name
            if folder.kind != "folder" or path == self.folder or folder.mtime > stale_before:
                continue
            try:
                entries = await self._store.scan(path)
            except FileNotFoundError:
                continue  # recovered and removed by another instance meanwhile
            for entry in entries:
                claimed = Claimed(entry.name, path / entry.name, entry)
                try:
                    if await self._archives.already_archived(claimed):
                        await self._store.unlink(claimed.path)
                        log.info("sftp.claim_archived_before", file=printable(entry.name))
                        continue
                    back = await self._archives.put_back(claimed)
                except FileNotFoundError:
                    continue  # another instance recovering the same claims moved it first
                else:
                    log.warning(
                        "sftp.claim_recovered",
                        file=printable(entry.name),
                        to=printable(back),
                        reason=f"claimed by an instance silent for over "
                        f"{self._stale_seconds:g}s ({folder.name})",
                    )
            with contextlib.suppress(OSError):
                await self._store.rmdir(path)

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
