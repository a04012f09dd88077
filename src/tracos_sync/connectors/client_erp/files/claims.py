"""Claims: a folder of this instance's own under ``<inbound>/.claims/`` into which inbound files are
renamed before they are read, so that several instances sharing one inbound folder each take a
file exactly once.

Ownership does not rest on process ids (reused, and every container's first process is pid 1):
each instance holds an OS lock (``flock``) on its claim folder itself for its lifetime. A
folder whose lock can be taken has no live owner on this host; the recoverer keeps that lock while
it puts the files back, so several instances recovering at once each skip what another holds.
``flock`` does not reach other hosts over a network file system, so a folder named after another
host is taken back only once it is also stale: its owner touches it every
``CLAIM_STALE_SECONDS / 4`` (at most every minute) while it lives, idle or not.

Crash loops are contained: each file put back from a dead instance's folder is noted (a
``suspect-…`` note beside the claim folders). A suspect is taken alone in its own batch; if it is
in hand again when an instance dies, the next recovery quarantines it in rejected/ as suspected
poison instead of putting it back. Archiving a file forgets its note."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from tracos_sync.domain.model import Problem

from .archive import reject
from .moves import move_no_clobber
from .notes import Notes, identity
from .temps import same_file

log = structlog.get_logger("tracos_sync.files")

CLAIMS_FOLDER = ".claims"
HEARTBEAT_MAX_SECONDS = 60.0
POISON_REASON = "in hand at 2 consecutive crashes (suspected poison)"


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A file this instance's recovery quarantined as suspected poison (``archived_as`` in
    rejected/): taken by this instance, though never in hand."""

    name: str
    archived_as: Path


class ClaimFolder:
    """This instance's claim folder, kept alive and recreated if it vanishes, and the recovery of
    abandoned ones."""

    def __init__(self, inbound: Path, stale_seconds: float, rejected: Path | None = None) -> None:
        self._inbound = inbound
        self._rejected = rejected if rejected is not None else inbound / "rejected"
        self._stale_seconds = stale_seconds
        self._host = socket.gethostname().replace("-", "_")
        self.root = inbound / CLAIMS_FOLDER
        self.name = f"{self._host}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = self.root / self.name
        self.suspects = Notes(self.root, "suspect")
        # How many dead instances' claim folders have been recovered here: a crash's number. A
        # suspect is poison only if in hand at the crash right after the one it was noted at:
        # a crash with nothing of it in hand in between clears it.
        self._crashes = Notes(self.root, "crashes")
        self._lock_fd: int | None = None
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._heartbeat: threading.Thread | None = None
        # Quarantined by this instance's recovery, until the run's first batch counts them.
        self.quarantined: list[Quarantined] = []

    def open(self) -> None:
        """Create the claims root, put back abandoned claims, create our own folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.recover_abandoned()
        with self._guard:
            self._create()
        interval = min(self._stale_seconds / 4, HEARTBEAT_MAX_SECONDS)
        self._heartbeat = threading.Thread(
            target=self._beat, args=(interval,), name="claim-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def _create(self) -> None:
        """Build the folder under a hidden name with its lock taken, then rename it into view, so
        that no recoverer ever sees it unlocked."""
        staging = self.root / f".{self.name}.new"
        staging.mkdir()
        fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a recoverer may look at it for an instant
            os.rename(staging, self.path)
        except BaseException:
            os.close(fd)
            raise
        self._release_lock()
        self._lock_fd = fd

    def _beat(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            try:
                self.ensure()
            except OSError as exc:  # a folder problem; the next claim reports it too
                log.warning("inbound.claim_heartbeat_failed", claim=self.name, reason=str(exc))

    def ensure(self) -> None:
        """Show we are alive (touch the folder); if it vanished meanwhile (another host's run
        removed it as stale, or someone removed the claims or the inbound folder), say which and
        recreate it."""
        with self._guard:
            if self._stopping.is_set():
                return
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)
                return
            log.warning("inbound.claim_folder_vanished", claim=self.name, reason=self._why_gone())
            self.root.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # a staging folder left by a failure
                (self.root / f".{self.name}.new").rmdir()
            self._create()

    def _why_gone(self) -> str:
        if not self._inbound.is_dir():
            return f"the inbound folder {self._inbound} was deleted or moved away; recreated"
        if not self.root.is_dir():
            return f"the claims folder {self.root} was deleted; recreated"
        return "removed by another instance as stale; recreated"

    def recover_abandoned(self) -> None:
        """Put back files claimed by an instance that died before archiving them."""
        for entry in os.scandir(self.root):
            if entry.name != self.name and entry.is_dir(follow_symlinks=False):
                self._recover(Path(entry.path))

    def _recover(self, folder: Path) -> None:
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return  # removed meanwhile, or not ours to touch
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # its owner lives, or another instance is recovering it now
            try:
                if not same_file(os.fstat(fd), os.stat(folder, follow_symlinks=False)):
                    return
            except FileNotFoundError:
                return  # the recoverer that held it before us has removed it
            if self._abandoned(folder):
                self._put_back_all(folder)
        finally:
            os.close(fd)

    def _abandoned(self, folder: Path) -> bool:
        """Called with the folder's lock held: free means no owner on this host."""
        host = folder.name.partition("-")[0]
        if folder.name.startswith("."):  # a staging folder: only if its creator died long ago
            return self._stale(folder)
        if host == self._host:
            return True
        return self._stale(folder)  # flock may not reach that host: also wait for staleness

    def _stale(self, folder: Path) -> bool:
        try:
            touched = os.stat(folder).st_mtime
        except OSError:
            return False
        return time.time() - touched > self._stale_seconds

    def _put_back_all(self, folder: Path) -> None:
        crash = self._count_crash()
        for claimed in os.scandir(folder):
            with contextlib.suppress(FileNotFoundError):
                self._recover_file(Path(claimed.path), folder.name, crash)
        with contextlib.suppress(OSError):
            folder.rmdir()

    def _count_crash(self) -> int:
        """The number of the crash being recovered (one more than the last; a hint shared by the
        instances on this folder, like the notes)."""
        note = self._crashes.get("count")
        last = note.get("count") if note is not None else 0
        crash = (last if isinstance(last, int) else 0) + 1
        with contextlib.suppress(OSError):
            self._crashes.put("count", {"count": crash})
        return crash

    def _recover_file(self, path: Path, claim: str, crash: int) -> None:
        """Put back one file of a dead instance and note it as a suspect; quarantine it if it
        was noted at the crash just before this one (in hand at two consecutive crashes)."""
        name = path.name
        now = identity(os.stat(path, follow_symlinks=False))
        note = self.suspects.get(name)
        if note is not None and note.get("identity") == now and note.get("crash") == crash - 1:
            try:
                archived = reject(path, self._rejected, name, [Problem("$", POISON_REASON)])
            except OSError as exc:  # put back as any other; quarantined at a later crash
                log.error("inbound.poison_quarantine_failed", file=name, reason=str(exc))
            else:
                self.suspects.forget(name)
                self.quarantined.append(Quarantined(name, archived))
                log.error(
                    "inbound.file_rejected",
                    file=name,
                    archived_as=archived.name,
                    problems=1,
                    first=f"$: {POISON_REASON}",
                )
                return
        # Noted before it is put back: another instance may take it and archive it at once,
        # and its archive forgets the note; a note written after that would outlive the file.
        suspect = {"identity": now, "crash": crash, "recoveredAt": time.time()}
        with contextlib.suppress(OSError):  # a hint only
            self.suspects.put(name, suspect)
        back = move_no_clobber(path, self._inbound, name)
        if back.name != name:  # put back beside a file of its name: the note follows it
            with contextlib.suppress(OSError):
                self.suspects.put(back.name, suspect)
                self.suspects.forget(name)
        log.warning(
            "inbound.claim_recovered",
            file=back.name,
            claim=claim,
            note="in hand when its instance died: taken alone next; quarantined if in hand "
            "at the next crash too",
        )

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        self._stopping.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self._guard:
            with contextlib.suppress(OSError):
                self.path.rmdir()
            self._release_lock()


def count_claimed(inbound: Path) -> int:
    """Files held in any claim folder (running or crashed instances); notes beside the claim
    folders are not files in hand."""
    claims = inbound / CLAIMS_FOLDER
    if not claims.is_dir():
        return 0
    return sum(1 for p in claims.glob("*/*") if p.is_file() or p.is_symlink())
