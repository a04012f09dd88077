"""Inbound files over SFTP that changed within INBOUND_SETTLE_SECONDS: judged where they are,
claimed only once whole."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.domain.text import printable

from ...codec import RecordDecoder
from ..reading import STREAM_MIN_BYTES
from ..store import Entry, FileStore, StoreUnavailable
from .archiving import Claimed
from .claims import SftpClaims
from .settings import SftpFolderSettings

log = structlog.get_logger("tracos_sync.files.sftp")


class YoungFiles:
    """Judges young files in the inbound folder, and claims those that are whole."""

    def __init__(
        self,
        store: FileStore,
        inbound: PurePosixPath,
        settings: SftpFolderSettings,
        decoder: RecordDecoder,
        claims: SftpClaims,
        *,
        give_back: Callable[[Claimed], Awaitable[object]],
        unreadable: Callable[[str, Entry, OSError], None],
    ) -> None:
        self._store = store
        self._inbound = inbound
        self._settings = settings
        self._decoder = decoder
        self._claims = claims
        self._give_back = give_back
        self._unreadable = unreadable

    async def judge_then_claim(self, entry: Entry) -> InboundUnit | None:
        """A file changed within INBOUND_SETTLE_SECONDS is read where it is and claimed only
        once it parses whole: a writer that reopens it by name (an append, a resumed upload)
        must find it there, not create a second file beside the one in hand. Claimed, it must
        still be the file that was read (same size and time), or it goes back."""
        settle = self._settings.inbound_settle_seconds
        if entry.size > STREAM_MIN_BYTES:
            # Taken once settled (a part-written export may end on a whole record and look
            # complete), then streamed; one larger than MAX_FILE_BYTES is rejected then.
            return None
        source = self._inbound / entry.name
        try:
            raw = await self._store.read(source, self._settings.max_file_bytes)
            after = await self._store.stat(source)
        except FileNotFoundError:
            return None  # taken by another instance, or moved by its writer
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            self._unreadable(entry.name, entry, exc)  # left where it is
            return None
        decoded = self._decoder.decode(raw)
        if (after.size, after.mtime) != (entry.size, entry.mtime) or decoded.unparsable:
            log.info(
                "inbound.still_being_written",
                file=printable(entry.name),
                reason=f"changed within INBOUND_SETTLE_SECONDS={settle:g} and "
                + ("does not parse" if decoded.unparsable else "changed while read")
                + "; left where it is",
            )
            return None
        claimed = Claimed(entry.name, source, entry)
        if not await self._claims.claim(claimed):
            return None
        try:
            held = await self._store.stat(claimed.path)
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError:
            held = None
        if held is None or (held.size, held.mtime) != (entry.size, entry.mtime):
            log.info(
                "inbound.still_being_written",
                file=printable(entry.name),
                reason="written to while it was read; taken once it settles",
            )
            await self._give_back(claimed)
            return None
        return decoded.unit(entry.name, claimed)
