"""Claimed files given back to the SFTP inbound folder: one file, a batch (stopped at the first
store failure), and what a sweep cut short left in our claim folder, but for the files kept
there on purpose."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.domain.text import printable

from ..store import StoreUnavailable
from .archiving import Archives, Claimed
from .claims import Quarantined, SftpClaims

log = structlog.get_logger("tracos_sync.files.sftp")


class GivingBack:
    """Puts claimed files back; remembers which ones stay claimed on purpose."""

    def __init__(self, archives: Archives, claims: SftpClaims, dry_run: bool) -> None:
        self._archives = archives
        self._claims = claims
        self._dry_run = dry_run
        # Names in our claim folder left there on purpose (an archive or give-back that
        # failed for that file alone): not put back by our own sweeps, only by another
        # instance's recovery once this one is gone (else applied and failed every sweep).
        self._kept: set[str] = set()

    def keep(self, claimed: Claimed) -> None:
        self._kept.add(claimed.path.name)

    def taken(self, claimed: Claimed) -> None:
        """Just claimed: that name in our claim folder is this file now."""
        self._kept.discard(claimed.path.name)

    async def one(self, claimed: Claimed) -> str | None:
        """``claimed`` back in the inbound folder: the name it went back under (``None``
        when it was gone, or in a dry run)."""
        if self._dry_run:
            return None
        with contextlib.suppress(FileNotFoundError):
            return await self._archives.put_back(claimed)
        return None

    async def all(self, units: Sequence[InboundUnit]) -> None:
        """Every file of ``units`` back, until the server is found away (often with the
        database, whose failure brought us here): each of the rest would wait the whole retry
        budget again. They stay in our claim folder, and are put back when it is recovered."""
        if self._dry_run:
            return
        for given, unit in enumerate(units):
            claimed = unit.handle
            if isinstance(claimed, Quarantined):
                continue  # never in hand
            assert isinstance(claimed, Claimed)
            try:
                await self._archives.put_back(claimed)
            except StoreUnavailable as exc:
                log.warning(
                    "sftp.claims_left",
                    files=len(units) - given,
                    folder=printable(str(self._claims.folder)),
                    reason=f"not given back: {exc}",
                )
                return
            except OSError:
                self.keep(claimed)  # this file alone; it stays claimed

    async def leftovers(self) -> None:
        """Called with nothing in hand (between sweeps): whatever is in our claim folder but
        what is kept was left by a sweep the server's going away cut short, and goes back."""
        try:
            await self._claims.put_back_own(self._kept)
        except FileNotFoundError:
            return  # our claim folder removed by someone: the heartbeat makes it again
        except StoreUnavailable as exc:
            raise DestinationUnwritable(str(exc)) from exc
        except OSError as exc:
            raise DestinationUnwritable(
                f"claim folder {self._claims.folder} cannot be listed: {exc}"
            ) from exc
