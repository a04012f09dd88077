"""The folder connector: the client ERP reached through folders of JSON files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import structlog

from tracos_sync.config import load_settings
from tracos_sync.domain.ports import Backlog, HealthCheck

from .claims import count_claimed
from .fsops import move_no_clobber
from .settings import FolderSettings
from .sink import FolderSink
from .source import SIDECAR_SUFFIX, FolderSource, waiting_files

log = structlog.get_logger("tracos_sync.files")


class FolderConnector:
    """The client ERP reached through folders of JSON files."""

    def __init__(self, settings: FolderSettings) -> None:
        self.settings = settings

    def source(self, dry_run: bool = False) -> FolderSource:
        return FolderSource(self.settings, dry_run)

    def sink(self, dry_run: bool = False) -> FolderSink:
        return FolderSink(self.settings, dry_run)

    def describe(self) -> dict[str, str]:
        return {
            "connector": "files",
            "inbound": str(self.settings.data_inbound_dir),
            "outbound": str(self.settings.data_outbound_dir),
        }

    async def health(self) -> list[HealthCheck]:
        return await asyncio.to_thread(self._health)

    def _health(self) -> list[HealthCheck]:
        s = self.settings
        checks = [
            _folder_check("inbound folder", s.data_inbound_dir),
            _folder_check("processed folder", s.processed_dir),
            _folder_check("rejected folder", s.rejected_dir),
            _folder_check("outbound folder", s.data_outbound_dir),
        ]
        if checks[0].ok and s.data_inbound_dir.is_dir():
            waiting = len(waiting_files(s))
            claimed = count_claimed(s.data_inbound_dir)
            quarantined = (
                sum(1 for p in s.rejected_dir.glob("*.json") if not p.name.endswith(SIDECAR_SUFFIX))
                if s.rejected_dir.is_dir()
                else 0
            )
            checks.append(
                HealthCheck(
                    "inbound files",
                    True,
                    f"{waiting} waiting, {claimed} claimed by running or crashed instances, "
                    f"{quarantined} quarantined in rejected/",
                )
            )
        return checks

    async def backlog(self) -> Backlog:
        return await asyncio.to_thread(self._backlog)

    def _backlog(self) -> Backlog:
        names = waiting_files(self.settings)  # oldest first
        oldest = None
        if names:
            with contextlib.suppress(OSError):
                mtime = (self.settings.data_inbound_dir / names[0]).stat().st_mtime
                oldest = max(0.0, time.time() - mtime)
        return Backlog(len(names), oldest)

    async def replay(self, names: Sequence[str]) -> list[str]:
        return await asyncio.to_thread(self._replay, names)

    def _replay(self, names: Sequence[str]) -> list[str]:
        """Move rejected files back into the inbound folder under their original names (a
        later file of that name wins the name; this one takes ``name~1.json``), removing their
        ``.error.json``."""
        rejected, inbound = self.settings.rejected_dir, self.settings.data_inbound_dir
        if not rejected.is_dir():
            return []
        wanted = set(names)
        moved = []
        for path in sorted(rejected.glob("*.json")):
            if path.name.endswith(SIDECAR_SUFFIX) or (wanted and path.name not in wanted):
                continue
            sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
            original = path.name
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                original = str(orjson.loads(sidecar.read_bytes())["file"])
            back = move_no_clobber(path, inbound, Path(original).name)
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
            log.info("replay.moved", file=path.name, to=back.name)
            moved.append(path.name)
        missing = wanted - set(moved)
        for name in sorted(missing):
            log.warning("replay.not_found", file=name, folder=str(rejected))
        return moved


def _folder_check(label: str, folder: Path) -> HealthCheck:
    if folder.is_dir():
        if os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            return HealthCheck(label, True, f"{folder} is readable and writable")
        return HealthCheck(label, False, f"{folder} is not readable and writable by this user")
    parent = next((p for p in folder.parents if p.exists()), None)
    if parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return HealthCheck(label, True, f"{folder} does not exist yet; it will be created")
    return HealthCheck(label, False, f"{folder} does not exist and cannot be created")


def create(env_file: str | None = ".env") -> FolderConnector:
    """The ``files`` connector factory (entry point ``tracos_sync.connectors:files``)."""
    return FolderConnector(load_settings(FolderSettings, env_file))
