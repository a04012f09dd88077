"""Where a claimed file goes on the server: back into the inbound folder, into processed/, or
into rejected/ beside its reason; each by renames that never replace (``42~1.json`` beside an
earlier ``42.json``). How a claim left half-archived by a kill is recognised, and a claim lost
to another instance's recovery told from a missing archive folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

import orjson
import structlog

from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.model import Problem
from tracos_sync.domain.text import printable

from ..archive import SIDECAR_SUFFIX, rejected_name
from ..fsnames import fit_name, free_names
from ..reading import Parts
from ..store import Entry, FileStore

log = structlog.get_logger("tracos_sync.files.sftp")

NAME_MAX = 255  # OpenSSH serves POSIX file systems; a longer name is refused per file anyway
# How much of a file and of its archived copy a recovery compares at a time.
COMPARE_PIECE_BYTES = 1024 * 1024


class ClaimLost(Exception):
    """The file is no longer in our claim folder: another instance took it back as stale (this
    one was silent past ``CLAIM_STALE_SECONDS``) and it is that instance's to archive, or
    someone removed it."""


@dataclass(slots=True)
class Claimed:
    """A file in hand: its name in the inbound folder, where it is now, and how it looked; a
    large one's parts (being decoded) and the problems its parts found so far."""

    name: str
    path: PurePosixPath
    seen: Entry
    parts: Parts | None = None
    problems: list[Problem] = field(default_factory=list)

    def open_parts(self) -> bool:
        """A large file whose last part has not been decoded yet."""
        return self.parts is not None and not self.parts.done


class Archives:
    """The moves of claimed files between the inbound folder and its archives."""

    def __init__(
        self,
        store: FileStore,
        inbound: PurePosixPath,
        processed: PurePosixPath,
        rejected: PurePosixPath,
    ) -> None:
        self._store = store
        self._inbound = inbound
        self._processed = processed
        self._rejected = rejected

    async def already_archived(self, claimed: Claimed) -> bool:
        """An archive move cut between its link and its unlink leaves the file in both places:
        the same size, time and bytes under one of its archive names."""
        for folder, name in (
            (self._processed, claimed.name),
            (self._rejected, rejected_name(claimed.name)),
        ):
            for candidate in free_names(name):
                try:
                    there = await self._store.stat(folder / fit_name(candidate, NAME_MAX))
                except FileNotFoundError:
                    break
                seen = claimed.seen
                same = (there.kind, there.size, there.mtime) == ("file", seen.size, seen.mtime)
                if same and await self._same_bytes(claimed.path, folder / there.name, seen.size):
                    return True
        return False

    async def _same_bytes(self, ours: PurePosixPath, theirs: PurePosixPath, size: int) -> bool:
        """Compared a piece at a time: a large file (up to MAX_FILE_BYTES) is never held whole,
        let alone twice, by a recovery."""
        for offset in range(0, max(size, 1), COMPARE_PIECE_BYTES):
            mine = await self._store.read_at(ours, offset, COMPARE_PIECE_BYTES)
            if await self._store.read_at(theirs, offset, COMPARE_PIECE_BYTES) != mine:
                return False
        return True

    async def put_back(self, claimed: Claimed) -> str:
        """Back into the inbound folder under its name, or the first free variant when the
        client sent a new file of that name meanwhile."""
        for candidate in free_names(claimed.name):
            name = fit_name(candidate, NAME_MAX)
            try:
                await self._store.move_no_clobber(claimed.path, self._inbound / name)
            except FileExistsError:
                continue
            return name
        raise AssertionError("unreachable")  # pragma: no cover

    async def archive(self, claimed: Claimed) -> None:
        """Into processed/ under its name, or the first free variant; never replacing.
        ``ClaimLost`` when the file is no longer ours."""
        for candidate in free_names(claimed.name):
            target = self._processed / fit_name(candidate, NAME_MAX)
            try:
                await self._store.move_no_clobber(claimed.path, target)
            except FileExistsError:
                continue
            except FileNotFoundError:
                await self._lost_unless_held(claimed)
                raise  # held still: the archive folder is gone
            return

    async def _lost_unless_held(self, claimed: Claimed) -> None:
        """A move that found nothing: ``ClaimLost`` when the claimed file itself is gone (a
        look on this failure path only)."""
        try:
            await self._store.stat(claimed.path)
        except FileNotFoundError as exc:
            raise ClaimLost(str(claimed.path)) from exc

    async def reject(self, claimed: Claimed, problems: Sequence[Problem]) -> str:
        """The reason first (complete, never over anything), then the file beside it; the
        name it is archived under."""
        limit = NAME_MAX - len(SIDECAR_SUFFIX)
        for candidate in free_names(rejected_name(claimed.name)):
            name = fit_name(candidate, limit)
            reason = self._rejected / (name + SIDECAR_SUFFIX)
            report: dict[str, object] = {
                "file": printable(claimed.name),
                "archivedAs": printable(name),
                "rejectedAt": format_instant(datetime.now(UTC)),
                "problems": [p.as_dict() for p in problems],
            }
            try:
                await self._store.create_exclusive(
                    reason, orjson.dumps(report, option=orjson.OPT_INDENT_2)
                )
            except FileExistsError:
                continue
            try:
                await self._store.move_no_clobber(claimed.path, self._rejected / name)
            except FileExistsError:
                await self._store.unlink(reason)
                continue
            except FileNotFoundError:
                # Not without its file: a reason alone would say a file was quarantined.
                await self._store.unlink(reason)
                await self._lost_unless_held(claimed)
                raise
            return name
        raise AssertionError("unreachable")  # pragma: no cover


def say_lost(stale_seconds: float, name: str, when: str) -> None:
    """A claim taken back from this instance while it was silent: said once, not counted."""
    log.warning(
        "inbound.claim_lost",
        file=printable(name),
        reason=f"no longer in this instance's claim folder when {when}: taken back by "
        "another instance, this one having been silent for over "
        f"CLAIM_STALE_SECONDS={stale_seconds:g} (or removed by "
        "someone); that instance archives it and counts it, this run does not",
    )
