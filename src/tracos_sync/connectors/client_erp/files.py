"""The JSON-folder transport: the client ERP's "API" is a folder of work-order files.

Inbound files are claimed before they are read, by an atomic rename into a folder of this
instance's own (``<inbound>/.claims/<host>-<pid>-<token>/``), so that several instances can share
one inbound folder and each file is taken by exactly one. A claim left by a dead instance is put
back at start-up. Files are archived only after their records are durable in TracOS, and nothing
is ever overwritten or deleted: every move is a no-clobber link+unlink.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import socket
import stat
import tempfile
import time
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import structlog
from pydantic import Field, model_validator

from tracos_sync.config import EnvSettings, TimeZoneName, load_settings
from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.errors import DestinationUnwritable, FatalError
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import Delivery, HealthCheck, InboundUnit

from .codec import RecordDecoder
from .translate import to_client

log = structlog.get_logger("tracos_sync.files")

CLAIMS_FOLDER = ".claims"
SIDECAR_SUFFIX = ".error.json"
WRITE_THREADS = 8


class FolderSettings(EnvSettings):
    """Settings of the JSON-folder transport."""

    data_inbound_dir: Path = Path("data/inbound")
    data_outbound_dir: Path = Path("data/outbound")
    data_processed_dir: Path | None = None
    data_rejected_dir: Path | None = None
    client_timezone: TimeZoneName = "UTC"
    max_file_bytes: int = Field(64 * 1024 * 1024, ge=1)
    inbound_min_age_seconds: float = Field(0.0, ge=0)
    claim_stale_seconds: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _default_archives(self) -> FolderSettings:
        if self.data_processed_dir is None:
            self.data_processed_dir = self.data_inbound_dir / "processed"
        if self.data_rejected_dir is None:
            self.data_rejected_dir = self.data_inbound_dir / "rejected"
        return self

    @property
    def processed_dir(self) -> Path:
        assert self.data_processed_dir is not None
        return self.data_processed_dir

    @property
    def rejected_dir(self) -> Path:
        assert self.data_rejected_dir is not None
        return self.data_rejected_dir


# --- small filesystem helpers ---------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_names(name: str) -> Iterable[str]:
    """``42.json``, then ``42~1.json``, ``42~2.json``, … for archiving beside an earlier one."""
    yield name
    stem, dot, suffix = name.partition(".")
    n = 1
    while True:
        yield f"{stem}~{n}{dot}{suffix}"
        n += 1


def move_no_clobber(src: Path, dst_dir: Path, name: str) -> Path:
    """Move ``src`` into ``dst_dir`` under ``name`` or the first free variant; never overwrites.

    A hard link fails atomically when the target exists, which a plain rename cannot do. Links
    are not followed, so a symlink is moved as itself.
    """
    for candidate in _free_names(name):
        target = dst_dir / candidate
        try:
            os.link(src, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # No hard links here (some network or FAT file systems): check, then rename.
            if os.path.lexists(target):
                continue
            os.replace(src, target)
            return target
        os.unlink(src)
        return target
    raise AssertionError("unreachable")  # pragma: no cover


def _write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: the reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- inbound ---------------------------------------------------------------------------------


class FolderSource:
    """``ClientSource`` over a folder of JSON files."""

    def __init__(self, settings: FolderSettings, dry_run: bool = False) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._inbound = settings.data_inbound_dir
        self._decoder = RecordDecoder(ZoneInfo(settings.client_timezone))
        self._host = socket.gethostname().replace("-", "_")
        self._claims_root = self._inbound / CLAIMS_FOLDER
        self._claim_dir = self._claims_root / f"{self._host}-{os.getpid()}-{secrets.token_hex(4)}"

    async def prepare(self) -> None:
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        if self._dry_run:
            return  # read in place; create, claim and recover nothing
        try:
            for folder in (
                self._inbound,
                self._settings.processed_dir,
                self._settings.rejected_dir,
                self._claims_root,
            ):
                folder.mkdir(parents=True, exist_ok=True)
            self._recover_abandoned_claims()
            self._claim_dir.mkdir()
        except OSError as exc:
            raise DestinationUnwritable(
                f"inbound folder {self._inbound} is not usable: {exc.strerror or exc}"
            ) from exc

    def _recover_abandoned_claims(self) -> None:
        """Put back files claimed by an instance that died before archiving them."""
        for entry in os.scandir(self._claims_root):
            if not entry.is_dir(follow_symlinks=False):
                continue
            host, _, rest = entry.name.partition("-")
            pid_text = rest.partition("-")[0]
            if host == self._host and pid_text.isdigit():
                abandoned = not _pid_alive(int(pid_text))
            else:  # another machine's claim: abandoned once untouched for long enough
                abandoned = time.time() - entry.stat().st_mtime > self._settings.claim_stale_seconds
            if not abandoned:
                continue
            folder = Path(entry.path)
            for claimed in os.scandir(folder):
                with contextlib.suppress(FileNotFoundError):
                    back = move_no_clobber(Path(claimed.path), self._inbound, claimed.name)
                    log.warning("inbound.claim_recovered", file=back.name, claim=entry.name)
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _candidates(self) -> list[str]:
        return waiting_files(self._settings)

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        """Batches of claimed, decoded files. The next batch is claimed and decoded in a worker
        thread while the consumer applies the current one."""
        names = iter(await asyncio.to_thread(self._candidates))
        loop = asyncio.get_running_loop()

        def read_ahead() -> asyncio.Future[list[InboundUnit]]:
            return loop.run_in_executor(None, self._take, names, max_records)

        pending: asyncio.Future[list[InboundUnit]] | None = read_ahead()
        try:
            while pending is not None:
                units = await pending
                pending = None
                if not units:
                    return
                pending = read_ahead()
                yield units
        finally:
            if pending is not None:  # the consumer stopped: give back what it never saw
                await self.release(await pending)

    def _take(self, names: Iterator[str], max_records: int) -> list[InboundUnit]:
        """Claim and decode files from ``names`` until they hold ``max_records`` records (a file
        with no valid record counts as one) or the names run out."""
        units: list[InboundUnit] = []
        total = 0
        for name in names:
            unit = self._claim_and_read(name)
            if unit is None:
                continue
            units.append(unit)
            total += max(len(unit.records), 1)
            if total >= max_records:
                break
        return units

    def _claim_and_read(self, name: str) -> InboundUnit | None:
        if self._dry_run:
            return self._read_in_place(name)
        claimed = self._claim_dir / name
        try:
            os.rename(self._inbound / name, claimed)
        except FileNotFoundError:
            return None  # another instance took it first
        except OSError as exc:
            log.warning("inbound.file_left", file=name, reason=f"cannot claim: {exc.strerror}")
            return None
        try:
            raw = self._read(claimed)
        except OSError as exc:
            self._put_back(claimed, name)
            log.warning(
                "inbound.file_left",
                file=name,
                reason=f"cannot be read ({exc.strerror or exc}); retried next run",
            )
            return None
        return self._unit(name, raw, claimed)

    def _read_in_place(self, name: str) -> InboundUnit | None:
        path = self._inbound / name
        try:
            raw = self._read(path)
        except OSError as exc:
            log.warning("inbound.file_left", file=name, reason=exc.strerror or str(exc))
            return None
        return self._unit(name, raw, path)

    def _unit(self, name: str, raw: bytes | None, handle: Path) -> InboundUnit:
        if raw is None:
            limit = self._settings.max_file_bytes
            too_big = Problem("$", f"file is larger than MAX_FILE_BYTES={limit}; not read")
            return InboundUnit(name, [], [too_big], rejected_records=1, handle=handle)
        decoded = self._decoder.decode(raw)
        if decoded.unknown_fields:
            fields = sorted(decoded.unknown_fields)
            log.debug("inbound.unknown_fields_ignored", file=name, fields=fields)
        return InboundUnit(name, decoded.records, decoded.problems, decoded.rejected, handle)

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes, or ``None`` when it is over the size limit (checked before reading).
        Non-blocking open: a FIFO swapped in after listing must not hang the run."""
        if path.is_symlink():
            # Only a link to a file in the inbound folder itself is read (checked again now, not
            # just when listed); the target is opened without following a further link.
            path = path.resolve()
            if path.parent != self._inbound.resolve():
                raise OSError(errno.EPERM, "symlink leads outside the inbound folder")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(path, flags)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            if info.st_size > self._settings.max_file_bytes:
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.read(self._settings.max_file_bytes + 1)
        finally:
            os.close(fd)

    def _put_back(self, claimed: Path, name: str) -> None:
        try:
            move_no_clobber(claimed, self._inbound, name)
        except FileNotFoundError:
            pass
        except OSError as exc:  # stays claimed; recovered when this instance is gone
            log.error("inbound.release_failed", file=name, reason=exc.strerror or str(exc))

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        if self._dry_run:
            for unit in units:
                if unit.problems:
                    log.warning(
                        "inbound.would_reject",
                        file=unit.name,
                        problems=len(unit.problems),
                        first=_first_problem(unit.problems),
                    )
            return
        await asyncio.to_thread(self._archive, units)

    def _archive(self, units: Sequence[InboundUnit]) -> None:
        processed, rejected = self._settings.processed_dir, self._settings.rejected_dir
        for position, unit in enumerate(units):
            claimed = unit.handle
            assert isinstance(claimed, Path)
            try:
                if unit.problems:
                    archived = move_no_clobber(claimed, rejected, unit.name)
                    self._write_sidecar(archived, unit)
                    log.warning(
                        "inbound.file_rejected",
                        file=unit.name,
                        archived_as=archived.name,
                        problems=len(unit.problems),
                        first=_first_problem(unit.problems),
                    )
                else:
                    archived = move_no_clobber(claimed, processed, unit.name)
                    log.debug("inbound.file_processed", file=unit.name, archived_as=archived.name)
            except OSError as exc:
                # The records are durable; the file goes back and is archived (as stale) next run.
                self._release(units[position:])
                raise DestinationUnwritable(
                    f"cannot archive {unit.name}: {exc.strerror or exc}"
                ) from exc
        for folder in (processed, rejected):
            with contextlib.suppress(OSError):
                _fsync_dir(folder)

    def _write_sidecar(self, archived: Path, unit: InboundUnit) -> None:
        report = {
            "file": unit.name,
            "archivedAs": archived.name,
            "rejectedAt": format_instant(datetime.now(UTC)),
            "problems": [p.as_dict() for p in unit.problems],
        }
        sidecar = archived.with_name(archived.name + SIDECAR_SUFFIX)
        _write_atomically(sidecar, orjson.dumps(report, option=orjson.OPT_INDENT_2))

    async def release(self, units: Sequence[InboundUnit]) -> None:
        if not self._dry_run:
            await asyncio.to_thread(self._release, units)

    def _release(self, units: Sequence[InboundUnit]) -> None:
        for unit in units:
            assert isinstance(unit.handle, Path)
            self._put_back(unit.handle, unit.name)

    async def close(self) -> None:
        if not self._dry_run:
            with contextlib.suppress(OSError):
                self._claim_dir.rmdir()


def waiting_files(settings: FolderSettings) -> list[str]:
    """Names of the inbound files to take, oldest first (none if the folder is missing). Odd
    entries are skipped with a warning."""
    inbound = settings.data_inbound_dir
    found: list[tuple[int, str]] = []
    if not inbound.is_dir():
        return []
    youngest = time.time_ns() - int(settings.inbound_min_age_seconds * 1e9)
    inbound_real = inbound.resolve()
    with os.scandir(inbound) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or not name.endswith(".json"):
                continue
            try:
                if entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if target.parent != inbound_real or not target.is_file():
                        log.warning(
                            "inbound.entry_skipped",
                            file=name,
                            reason="symlink that leads outside the folder or nowhere",
                        )
                        continue
                    info = target.stat()
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                else:
                    log.warning("inbound.entry_skipped", file=name, reason="not a regular file")
                    continue
            except OSError as exc:
                log.warning("inbound.entry_skipped", file=name, reason=exc.strerror or str(exc))
                continue
            if info.st_mtime_ns > youngest:
                continue  # may still be being written; next run takes it
            found.append((info.st_mtime_ns, name))
    found.sort()
    return [name for _, name in found]


def _first_problem(problems: Sequence[Problem]) -> str:
    p = problems[0]
    where = f"record {p.record} " if p.record is not None else ""
    return f"{where}{p.path}: {p.reason}"


# --- outbound --------------------------------------------------------------------------------


class FolderSink:
    """``ClientSink`` writing ``<outbound>/<number>.json`` atomically, a few files at a time
    (the per-file fsync is what costs), and the folder fsynced once per batch."""

    def __init__(self, settings: FolderSettings, dry_run: bool = False) -> None:
        self._outbound = settings.data_outbound_dir
        self._dry_run = dry_run
        self._pool: ThreadPoolExecutor | None = None

    async def prepare(self) -> None:
        if self._dry_run:
            return
        try:
            await asyncio.to_thread(self._outbound.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationUnwritable(
                f"outbound folder {self._outbound} cannot be created: {exc.strerror or exc}"
            ) from exc

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        if self._dry_run:  # translate and encode everything, write nothing
            for order in orders:
                orjson.dumps(to_client(order))
            return Delivery(delivered=[order.number for order in orders])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="outbound")
        loop = asyncio.get_running_loop()
        jobs = [
            loop.run_in_executor(
                self._pool,
                _write_atomically,
                self._outbound / f"{order.number}.json",
                orjson.dumps(to_client(order), option=orjson.OPT_INDENT_2),
            )
            for order in orders
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        delivery = Delivery()
        errors: list[BaseException] = []
        for order, result in zip(orders, results, strict=True):
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                delivery.delivered.append(order.number)
        try:
            if delivery.delivered:
                await loop.run_in_executor(self._pool, _fsync_dir, self._outbound)
        except OSError as exc:
            errors.insert(0, exc)
            delivery.delivered.clear()  # the renames may not be durable: mark nothing
        if errors:
            first = errors[0]
            if not isinstance(first, OSError):
                raise first
            fatal: FatalError = DestinationUnwritable(
                f"cannot write to {self._outbound}: {first.strerror or first}"
                f" ({len(errors)} of {len(orders)} files failed)"
            )
            fatal.__cause__ = first
            delivery.fatal = fatal
        return delivery

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# --- the connector ---------------------------------------------------------------------------


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
            claims = s.data_inbound_dir / CLAIMS_FOLDER
            claimed = sum(1 for p in claims.rglob("*") if p.is_file()) if claims.is_dir() else 0
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
