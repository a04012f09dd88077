"""Inbound files over SFTP whose records are durable: archived, or rejected with the problems
of every part, or given back when a writer changed them while they were in hand.

A file written to after it was read (a writer that rewrote it in place, through a descriptor it
kept open across our claim) is not archived: archived, it would say its new content was applied
when the old one was. It goes back and is taken again (local folders look at each file before
its move the same way). A small file is looked at in one listing of the claim folder for the
whole batch (one request per hundred or so files, not one each); a large one on its own. SFTP
times are whole seconds: a rewrite at the same size within the second of the read is not seen."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.domain.text import printable

from ..store import Entry, FileStore, StoreUnavailable
from .archiving import Archives, Claimed, ClaimLost, say_lost
from .claims import Quarantined, SftpClaims
from .giving_back import GivingBack

log = structlog.get_logger("tracos_sync.files.sftp")


class Completing:
    """``ClientSource.complete`` for the SFTP source (not in a dry run)."""

    def __init__(
        self,
        store: FileStore,
        *,
        archives: Archives,
        claims: SftpClaims,
        giving: GivingBack,
        parallel: int,
        claim_stale_seconds: float,
    ) -> None:
        self._store = store
        self._archives = archives
        self._claims = claims
        self._giving = giving
        self._parallel = asyncio.Semaphore(parallel)
        self._claim_stale_seconds = claim_stale_seconds

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        in_hand = [unit for unit in units if not isinstance(unit.handle, Quarantined)]
        looks = await self._looks(in_hand)
        results = await asyncio.gather(
            *(self._archive(unit, looks) for unit in in_hand), return_exceptions=True
        )
        for unit, result in zip(in_hand, results, strict=True):
            if isinstance(result, StoreUnavailable):
                raise DestinationUnwritable(str(result)) from result
            if isinstance(result, ClaimLost):
                unit.taken_back = True
                say_lost(self._claim_stale_seconds, unit.name, "archived")
            elif isinstance(result, OSError):
                # This file alone: it stays in our claim folder, is not claimed again by this
                # instance, and is put back by another instance's recovery once this one is
                # gone (its claim folder stale).
                assert isinstance(unit.handle, Claimed)
                self._giving.keep(unit.handle)
                log.warning("inbound.archive_failed", file=printable(unit.name), reason=str(result))
            elif isinstance(result, BaseException):
                raise result

    async def _looks(self, units: Sequence[InboundUnit]) -> dict[str, Entry]:
        """How the small files about to be archived look now, by their names in the claim
        folder: one listing for all of them."""
        if not any(_small(unit) for unit in units):
            return {}
        try:
            return {entry.name: entry for entry in await self._store.scan(self._claims.folder)}
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError:
            return {}  # the folder gone (taken back as stale): each archive says so, per file

    async def _archive(self, unit: InboundUnit, looks: dict[str, Entry]) -> None:
        """A file archived (or rejected with the problems of every part) once its last unit
        is done; changed while in hand, it goes back instead, to be taken again once whole."""
        claimed = unit.handle
        assert isinstance(claimed, Claimed)
        claimed.problems.extend(unit.problems)
        if not unit.ends_input:
            return
        async with self._parallel:
            if _changed(claimed, await self._look(claimed, looks)):
                await self._giving.one(claimed)
                return
            if claimed.problems:
                await self._archives.reject(claimed, claimed.problems)
            else:
                await self._archives.archive(claimed)
            await self._claims.forget(unit.name)

    async def _look(self, claimed: Claimed, looks: dict[str, Entry]) -> Entry | None:
        """How ``claimed`` looks now (``None``: gone from the claim folder): a small one from
        the batch's listing, a large one on its own."""
        if claimed.parts is None:
            return looks.get(claimed.path.name)
        try:
            return await self._store.stat(claimed.path)
        except FileNotFoundError:
            return None


def _small(unit: InboundUnit) -> bool:
    claimed = unit.handle
    return unit.ends_input and isinstance(claimed, Claimed) and claimed.parts is None


def _changed(claimed: Claimed, now: Entry | None) -> bool:
    """Whether the file was written to since it was read (said); one no longer in the claim
    folder is not: its archive says the claim was lost."""
    if now is None or (now.size, now.mtime) == (claimed.seen.size, claimed.seen.mtime):
        return False
    log.warning(
        "inbound.file_changed_in_hand",
        file=printable(claimed.name),
        reason="written to after it was taken (its writer was not done): put back, taken "
        "again once whole; records applied from it meanwhile are re-applied as stale",
    )
    return True
