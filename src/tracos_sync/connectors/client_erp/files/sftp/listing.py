"""What an SFTP inbound folder holds to take this sweep."""

from __future__ import annotations

import time
from pathlib import PurePosixPath

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.text import printable

from ..store import Entry, FileStore, StoreUnavailable
from .claims import SftpClaims
from .settings import SftpFolderSettings

log = structlog.get_logger("tracos_sync.files.sftp")

IGNORED_SUFFIXES = (".tmp", ".part")


def is_input(entry: Entry) -> bool:
    return entry.kind == "file" and _named_input(entry.name)


def _named_input(name: str) -> bool:
    return (
        name.endswith(".json") and not name.startswith(".") and not name.endswith(IGNORED_SUFFIXES)
    )


class InboundListing:
    """The inbound folder's files to take, oldest first; links said once each."""

    def __init__(
        self,
        store: FileStore,
        inbound: PurePosixPath,
        settings: SftpFolderSettings,
        claims: SftpClaims,
        dry_run: bool,
    ) -> None:
        self._store = store
        self._inbound = inbound
        self._settings = settings
        self._claims = claims
        self._dry_run = dry_run
        self._said_links: set[str] = set()
        # Inbound files this account could not read, by name, as listed (size, time): left
        # where they are, and not taken again until they change.
        self._cannot_read: dict[str, tuple[int, float]] = {}

    def not_readable(self, name: str, listed: Entry, exc: OSError) -> None:
        """Said once: the file is left where it is, and skipped until it changes."""
        self._cannot_read[name] = (listed.size, listed.mtime)
        log.warning(
            "inbound.unreadable",
            file=printable(name),
            reason=str(exc),
            note="left where it is; taken again once it changes (its size or time), or by the "
            "next run",
        )

    async def ready(self) -> list[Entry]:
        """The inbound files to take this sweep, oldest first (our claim folder kept alive,
        and the claims of dead instances put back, first)."""
        try:
            if not self._dry_run:
                await self._claims.heartbeat()
                # Every sweep: a watch outlives the instances it sees die.
                await self._claims.recover()
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:  # our claim folder: not ours to write (it is made again if gone)
            raise DestinationUnwritable(
                f"claim folder {self._claims.folder} on {self._store.describe()} cannot be "
                f"kept: {exc}"
            ) from exc
        try:
            listed = await self._store.scan(self._inbound)
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:  # the folder itself: gone, or not ours to read
            raise DestinationUnwritable(
                f"inbound folder {self._inbound} on {self._store.describe()} cannot be "
                f"listed: {exc}"
            ) from exc
        if not self._dry_run:
            try:
                await self._claims.load_suspects()
            except StoreUnavailable as exc:
                raise DestinationUnwritable(str(exc)) from exc
        entries = [e for e in listed if is_input(e)]
        # Those that changed, or went, are forgotten: tried again.
        self._cannot_read = {
            e.name: (e.size, e.mtime)
            for e in entries
            if self._cannot_read.get(e.name) == (e.size, e.mtime)
        }
        entries = [e for e in entries if e.name not in self._cannot_read]
        for link in (e.name for e in listed if e.kind == "link" and _named_input(e.name)):
            if link not in self._said_links:  # once per name, as the local folder says it
                self._said_links.add(link)
                log.warning(
                    "inbound.entry_skipped",
                    file=printable(link),
                    reason="symlink: links are not followed on an SFTP server",
                )
        if self._dry_run:
            # Nothing of ours to touch: this host's clock stands in.
            self._claims.now = time.time()
        entries.sort(key=lambda e: (e.mtime, e.name))
        min_age = self._settings.inbound_min_age_seconds
        return [e for e in entries if self._dry_run or self._claims.now - e.mtime >= min_age]
