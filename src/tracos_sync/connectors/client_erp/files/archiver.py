"""Completing inbound files once their records are durable in TracOS: each file whose last unit
is done goes to processed/, or to rejected/ beside its reasons; one that changed while in hand
goes back. A file that fails for a reason of its own costs only itself; only a folder that refuses
every file stops the run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import structlog

from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit

from ..told import tell_problems
from .archive import folder_refuses, reject
from .claiming import Claimer
from .moves import SourceChanged, move_no_clobber
from .reading import Held, unchanged
from .settings import FolderSettings
from .settling import Settling
from .temps import fsync_dir

log = structlog.get_logger("tracos_sync.files")


class Archiver:
    """Archives the files of one inbound folder; gives back through ``claimer``."""

    def __init__(self, settings: FolderSettings, claimer: Claimer, settling: Settling) -> None:
        self._settings = settings
        self._claimer = claimer
        self._settling = settling
        # A dry run's problems told so far, per file in parts (a large file).
        self._told: dict[str, int] = {}

    def would_reject(self, units: Sequence[InboundUnit]) -> None:
        """A dry run: what would be rejected is said, each problem on a line of its own (no
        reason file is written to hold them) up to ``TOLD_PER_INPUT`` a file, nothing is moved."""
        for unit in units:
            if unit.problems:
                log.warning(
                    "inbound.would_reject",
                    file=unit.name,
                    problems=len(unit.problems),
                    first=first_problem(unit.problems),
                )
                told = self._told.get(unit.name, 0)
                self._told[unit.name] = tell_problems(log, unit.problems, told=told, file=unit.name)
            if unit.ends_input:
                self._told.pop(unit.name, None)

    def archive(self, units: Sequence[InboundUnit]) -> None:
        """Archive each file whose last unit is among ``units`` (a large file's earlier parts
        only add their problems); one that fails for a reason of its own (its name, its
        permissions) is given back for the next run and costs only itself. A file that changed
        while in hand, or that does not parse and may still be being written, is put back. Only
        a folder that refuses every file stops the run."""
        processed, rejected = self._settings.processed_dir, self._settings.rejected_dir
        touched: set[Path] = set()
        for position, unit in enumerate(units):
            held = unit.handle
            assert isinstance(held, Held)
            held.problems.extend(unit.problems)
            if not unit.ends_input or held.left:
                continue
            if self._left_in_hand(held):
                continue
            problems = held.problems
            folder = rejected if problems else processed
            touched.add(folder)
            try:
                if problems:
                    archived = reject(held.path, rejected, held.name, problems)
                    log.warning(
                        "inbound.file_rejected",
                        file=held.name,
                        archived_as=archived.name,
                        problems=len(problems),
                        first=first_problem(problems),
                    )
                else:
                    archived = move_no_clobber(held.path, processed, held.name)
                    log.debug("inbound.file_processed", file=held.name, archived_as=archived.name)
            except SourceChanged:
                self._changed_in_hand(held)
                continue
            except OSError as exc:
                if folder_refuses(folder, exc):
                    # The records are durable; the files go back and are archived (as stale)
                    # next run.
                    self._claimer.release(units[position:])
                    raise DestinationUnwritable(
                        f"cannot archive {held.name} in {folder}: {exc.strerror or exc}"
                    ) from exc
                log.error(
                    "inbound.archive_failed",
                    file=held.name,
                    folder=str(folder),
                    reason=f"{exc.strerror or exc}; left for the next run",
                )
                self._claimer.put_back(held.path, held.name)
                continue
            self._forget(held.name)
        # Only the folders that received files: a folder fsync costs a journal commit and a
        # disk flush, and a sweep under a trickle archives into one folder, not two.
        for folder in sorted(touched):
            with contextlib.suppress(OSError):
                fsync_dir(folder)

    def _left_in_hand(self, held: Held) -> bool:
        """Whether the file goes back rather than to an archive: it changed since it was opened
        (a writer still at it)."""
        if held.opened is None:
            return False
        try:
            now = os.stat(held.path, follow_symlinks=False)
        except OSError:
            return False  # archiving says what happened
        if not unchanged(held.opened, now):
            self._changed_in_hand(held)
            return True
        return False

    def _changed_in_hand(self, held: Held) -> None:
        self._claimer.put_back(held.path, held.name)
        log.warning(
            "inbound.file_changed_in_hand",
            file=held.name,
            reason="written to after it was taken (its writer was not done): put back, taken "
            "again once whole; records applied from it meanwhile are re-applied as stale",
        )

    def _forget(self, name: str) -> None:
        """Archived: what was noted about the file no longer applies."""
        self._claimer.forget(name)
        self._settling.forget(name)


def first_problem(problems: Sequence[Problem]) -> str:
    p = problems[0]
    where = f"record {p.record} " if p.record is not None else ""
    return f"{where}{p.path}: {p.reason}"
