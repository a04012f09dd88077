"""Claiming inbound files: a waiting file is moved into this instance's claim folder before it is
read, so that of several instances sharing the folder exactly one takes it; put back under its
own name when it is not archived. A file in hand when an instance died is a suspect: taken alone
(nothing else of this instance in hand with it, see ``hand``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.ports import InboundUnit

from .claims import ClaimFolder, Quarantined
from .moves import move_no_clobber, place_no_clobber
from .reading import Held
from .repeats import Repeats
from .settings import FolderSettings

log = structlog.get_logger("tracos_sync.files")


class Claimer:
    """Claims files of one inbound folder and gives them back."""

    def __init__(self, settings: FolderSettings, said: Repeats) -> None:
        self._inbound = settings.data_inbound_dir
        self.claims = ClaimFolder(
            self._inbound, settings.claim_stale_seconds, settings.rejected_dir
        )
        self._claim_dir = self.claims.path
        self._said = said
        self._suspects: set[str] = set()
        # Files put back since the sweep began: watch's following takes them at the next sweep,
        # not again in this one (a batch given back because archiving failed would otherwise be
        # applied again, and counted twice, before the failure ends the sweep).
        self.given_back: set[str] = set()

    def refresh(self) -> None:
        """The claim folder exists (recreated, loudly, if another host removed it as stale)."""
        try:
            self.claims.ensure()
        except OSError as exc:
            raise DestinationUnwritable(
                f"claim folder {self._claim_dir} cannot be recreated: {exc.strerror or exc}"
            ) from exc

    def load_suspects(self) -> None:
        self._suspects = self.claims.suspects.names()

    def suspect(self, name: str) -> bool:
        """In hand when an instance died: taken alone."""
        return name in self._suspects

    def has_suspects(self) -> bool:
        return bool(self._suspects)

    def take_quarantined(self) -> list[Quarantined]:
        """What this instance's recovery quarantined as suspected poison and no run has counted
        yet."""
        taken, self.claims.quarantined = self.claims.quarantined, []
        return taken

    def claim(self, name: str, again: bool = True) -> Path | None:
        """Where the waiting file ``name`` is now in hand; ``None`` when it is gone (another
        instance took it first) or cannot be claimed (said)."""
        source = self._inbound / name
        claimed = self._claim_dir / name
        try:
            if not place_no_clobber(source, claimed):
                # A file of that name is still in hand (claimed, not yet archived): the client
                # reused the name. Claimed beside it, never over it.
                claimed = move_no_clobber(source, self._claim_dir, name)
        except FileNotFoundError:
            if self._claim_dir.is_dir() or not again:
                return None  # another instance took it first
            self.refresh()  # removed by another host as stale: recreated, loudly
            return self.claim(name, again=False)
        except OSError as exc:
            self._said.warn("inbound.file_left", name, f"cannot claim: {exc.strerror}")
            return None
        return claimed

    def put_back(self, claimed: Path, name: str) -> None:
        self.given_back.add(name)
        try:
            move_no_clobber(claimed, self._inbound, name)
        except FileNotFoundError:
            pass
        except OSError as exc:  # stays claimed; recovered when this instance is gone
            log.error("inbound.release_failed", file=name, reason=exc.strerror or str(exc))

    def release(self, units: Sequence[InboundUnit]) -> None:
        """Put the units' files back (one quarantined at recovery was never in hand)."""
        for unit in units:
            held = unit.handle
            if isinstance(held, Quarantined):
                continue
            assert isinstance(held, Held)
            self.put_back(held.path, held.name)

    def forget(self, name: str) -> None:
        """Archived: no longer a suspect. The note is removed even when this instance did not
        know of it: another one may have noted the file after this one loaded its suspects."""
        self._suspects.discard(name)
        with contextlib.suppress(OSError):
            self.claims.suspects.forget(name)
