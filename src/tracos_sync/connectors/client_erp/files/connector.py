"""The folder connector: the client ERP reached through folders of JSON files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import structlog

from tracos_sync.config import connector_settings
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import (
    Backlog,
    ConnectorConfig,
    ConnectorContext,
    FolderEvents,
    HealthCheck,
    Owned,
)
from tracos_sync.mapping import RecordMapping

from ..resolve import resolve_mapping
from .archive import SIDECAR_SUFFIX, rejected_files
from .claims import count_claimed
from .durable import create_exclusively
from .folder_watch import FolderWatch
from .moves import move_no_clobber
from .settings import FolderSettings
from .sftp.settings import SftpFolderSettings, folders_on_sftp
from .sink import FolderSink
from .source import FolderSource, waiting_entries, waiting_files

if TYPE_CHECKING:
    from .sftp.connector import SftpConnector

__all__ = ["FolderConnector", "SftpFolderSettings", "create"]

log = structlog.get_logger("tracos_sync.files")


class FolderConnector:
    """The client ERP reached through folders of JSON files."""

    def __init__(
        self, settings: FolderSettings, mapping: RecordMapping, events: FolderEvents | None = None
    ) -> None:
        """``events``: the process's one watch of folders (the bootstrap's); None: its own."""
        self.settings = settings
        self.mapping = mapping
        self.events = events if events is not None else FolderWatch()

    def source(self, context: ConnectorContext) -> FolderSource:
        return FolderSource(self.settings, self.mapping, context.dry_run)

    def sink(self, context: ConnectorContext) -> FolderSink:
        return FolderSink(
            self.settings, self.mapping, context.dry_run, context.lock_timeout_seconds
        )

    def describe(self) -> dict[str, str]:
        return {
            "connector": "files",
            # Absolute: a relative setting names a folder of the working directory, which a
            # run from the wrong one would otherwise not show.
            "inbound": str(self.settings.data_inbound_dir.absolute()),
            "outbound": str(self.settings.data_outbound_dir.absolute()),
        }

    def secrets(self) -> list[str]:
        return []

    def owned(self) -> Owned:
        return Owned(folders=self.settings.folders())

    async def health(self, context: ConnectorContext) -> list[HealthCheck]:
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
            entries = waiting_entries(s)
            ahead = sum(w.ahead for w in entries)
            waiting = f"{len(entries)} waiting" + (
                f" ({ahead} dated ahead of this host's clock)" if ahead else ""
            )
            claimed = count_claimed(s.data_inbound_dir)
            quarantined, orphans = rejected_files(s.rejected_dir)
            lost = f" ({len(orphans)} reasons without their file)" if orphans else ""
            checks.append(
                HealthCheck(
                    "inbound files",
                    True,
                    f"{waiting}, {claimed} claimed by running or crashed instances, "
                    f"{len(quarantined)} quarantined in rejected/{lost}",
                )
            )
            for label, folder in (("processed", s.processed_dir), ("rejected", s.rejected_dir)):
                if folder.is_dir():
                    checks.append(_archive_check(label, s.data_inbound_dir, folder))
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

    async def holds_inputs(self) -> bool:
        return bool(await asyncio.to_thread(waiting_files, self.settings))

    async def add_samples(self, orders: Sequence[WorkOrder], broken: Mapping[str, bytes]) -> int:
        inputs = {
            f"{order.number}.json": orjson.dumps(
                self.mapping.enclose([self.mapping.encode(order)]), option=orjson.OPT_INDENT_2
            )
            for order in orders
        }
        broken_inputs = {name: _in_envelope(self.mapping, raw) for name, raw in broken.items()}
        return await asyncio.to_thread(self._add_samples, inputs | broken_inputs)

    def _add_samples(self, inputs: dict[str, bytes]) -> int:
        """Each sample complete (written whole, then renamed in) and dated as a client file
        whose writer is done: a run right after ``seed`` takes them all, the broken ones
        included (a file that does not parse and changed within ``INBOUND_SETTLE_SECONDS`` or
        ``INBOUND_MIN_AGE_SECONDS`` would be left for later)."""
        inbound = self.settings.data_inbound_dir
        inbound.mkdir(parents=True, exist_ok=True)
        # The sample project whole, both folders (said in seed.done): the first run after it
        # (``make run``) creates nothing, so that a folder.created warning means a wrong place.
        self.settings.data_outbound_dir.mkdir(parents=True, exist_ok=True)
        s = self.settings
        done = time.time() - max(s.inbound_settle_seconds, s.inbound_min_age_seconds) - 1
        written = 0
        for name, data in inputs.items():
            with contextlib.suppress(FileExistsError):
                create_exclusively(inbound / name, data)
                os.utime(inbound / name, (done, done))
                written += 1
        return written

    def input_events(self) -> AsyncIterator[None]:
        return self.events.ready_files(
            self.settings.data_inbound_dir, self.settings.inbound_min_age_seconds
        )

    async def replay(self, names: Sequence[str]) -> list[str]:
        return await asyncio.to_thread(self._replay, names)

    def _replay(self, names: Sequence[str]) -> list[str]:
        """Move rejected files back into the inbound folder under their original names (a
        later file of that name wins the name; this one takes ``name~1.json``), removing their
        ``.error.json``."""
        rejected, inbound = self.settings.rejected_dir, self.settings.data_inbound_dir
        if not rejected.is_dir():
            log.warning(
                "replay.no_rejected_folder",
                folder=str(rejected.absolute()),
                reason="no rejected folder there: nothing was quarantined in it (a relative "
                "DATA_INBOUND_DIR or DATA_REJECTED_DIR is taken from the working directory)",
                **({"not_found": ", ".join(names)} if names else {}),
            )
            return []
        wanted = set(names)
        moved = []
        for name in rejected_files(rejected)[0]:
            if wanted and name not in wanted:
                continue
            path = rejected / name
            sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
            original = path.name
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                reason = orjson.loads(sidecar.read_bytes())
                original = (
                    os.fsdecode(bytes.fromhex(reason["fileBytesHex"]))
                    if "fileBytesHex" in reason
                    else str(reason["file"])
                )
            back = move_no_clobber(path, inbound, Path(original).name)
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
            log.info("replay.moved", file=path.name, to=back.name)
            moved.append(path.name)
        missing = wanted - set(moved)
        for name in sorted(missing):
            log.warning("replay.not_found", file=name, folder=str(rejected.absolute()))
        return moved


def _in_envelope(mapping: RecordMapping, raw: bytes) -> bytes:
    """A broken sample as this customer's files would hold it: in the mapping's envelope, so
    that it shows what is wrong with it (a record that breaks the schema) rather than the
    envelope it lacks. One that is not JSON is put between the envelope's opening and closing
    as it is (still not JSON)."""
    if mapping.records_path is None:
        return raw
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        opening, closing = orjson.dumps(mapping.enclose([])).split(b"[]")
        return opening + b"[" + raw + b"]" + closing
    records = document if isinstance(document, list) else [document]
    return orjson.dumps(mapping.enclose(records), option=orjson.OPT_INDENT_2)


def _archive_check(label: str, inbound: Path, folder: Path) -> HealthCheck:
    """Move a probe file from inbound to ``folder`` the way archiving does (also across file
    systems), then remove it."""
    what = f"archiving to {label}/"
    try:
        fd, probe = tempfile.mkstemp(dir=inbound, prefix=".tracos-check.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        return HealthCheck(what, False, f"cannot create a file in {inbound}: {exc.strerror}")
    moved: Path | None = None
    try:
        moved = move_no_clobber(Path(probe), folder, Path(probe).name)
        across = os.stat(inbound).st_dev != os.stat(folder).st_dev
    except OSError as exc:
        return HealthCheck(what, False, f"cannot move a file into {folder}: {exc.strerror}")
    finally:
        for leftover in (Path(probe), moved):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    leftover.unlink()
    how = "by copy, another file system" if across else "by rename"
    return HealthCheck(what, True, f"a file moves from inbound to {folder} ({how})")


def _folder_check(label: str, folder: Path) -> HealthCheck:
    folder = folder.absolute()  # a relative setting is taken from the working directory
    if folder.is_dir():
        if os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            return HealthCheck(label, True, f"{folder} is readable and writable")
        return HealthCheck(label, False, f"{folder} is not readable and writable by this user")
    if folder.exists() or folder.is_symlink():
        return HealthCheck(label, False, f"{folder} is there but is not a folder")
    parent = next((p for p in folder.parents if p.exists()), None)
    if parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return HealthCheck(label, True, f"{folder} does not exist yet; it will be created")
    return HealthCheck(label, False, f"{folder} does not exist and cannot be created")


def create(config: ConnectorConfig) -> FolderConnector | SftpConnector:
    """The ``files`` connector factory (entry point ``tracos_sync.connectors:files``): folders
    on this host, or on an SFTP server when they are given as ``sftp://`` URLs."""
    if folders_on_sftp(config):
        # Imported here: asyncssh is a tenth of a second of every process's start, and only an
        # integration on SFTP needs it.
        from .sftp.connector import create as create_on_sftp

        return create_on_sftp(config)
    settings = connector_settings(FolderSettings, config)
    mapping = resolve_mapping(config)
    return FolderConnector(settings, mapping, config.folder_events)
