"""The outbound folder's lock: exclusive against other threads and processes of this host, and
never waited for longer than a deadline (a frozen holder must not stall a run, nor its exit)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# How long a writer waits for a folder's lock by default (LOCK_TIMEOUT_SECONDS).
LOCK_TIMEOUT_SECONDS = 10.0
# Polling a non-blocking flock: first retry soon (a neighbour's compare-and-rename takes
# milliseconds), then at most this often.
_LOCK_FIRST_RETRY = 0.002
_LOCK_MAX_RETRY = 0.05
# The holder when /proc/locks shows this process: one of its own writer threads.
OWN_WRITER = "a writer thread of this process"


class LockHeld(Exception):
    """A folder's lock was not had within its deadline, or the wait was abandoned (the work is
    being stopped). ``holder`` says who holds it, as far as this host can tell."""

    def __init__(self, folder: Path, holder: str, waited: float) -> None:
        super().__init__(f"{folder} is locked by {holder} (waited {waited:.1f}s)")
        self.folder = folder
        self.holder = holder
        self.waited = waited


# This process's threads take turns on a folder through a lock of their own first, which hands
# over at once; the non-blocking flock below then only ever waits for other processes (polling
# it among our own threads would leave the lock idle for the length of each backoff).
class _Turns:
    """Our threads' turns on one folder, and how many have been taken: a count that moves
    tells a queue that is moving from a sibling that holds the folder and does not let go."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.taken = 0


_TURNS: dict[Path, _Turns] = {}
_TURNS_GUARD = threading.Lock()


def _turns(folder: Path) -> _Turns:
    with _TURNS_GUARD:
        return _TURNS.setdefault(folder, _Turns())


class _WaitClock:
    """How long a lock has been waited for: each wait counted for as long as it took, but never
    more than it was meant to last (plus scheduling slack). A process paused in the middle of a
    wait (SIGSTOP, a paused VM or container) counts that wait once, not the pause: a pause is
    nobody's holding of the lock, and must not make a run defer its own files."""

    def __init__(self) -> None:
        self.total = 0.0
        self._last = time.monotonic()

    def waited(self, meant: float) -> None:
        now = time.monotonic()
        self.total += min(now - self._last, meant + _LOCK_MAX_RETRY)
        self._last = now


@contextlib.contextmanager
def folder_lock(
    folder: Path,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    abandon: threading.Event | None = None,
    given_up: threading.Event | None = None,
) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` against other threads and processes of this host;
    raise ``LockHeld`` when it is not had within ``timeout`` seconds of waiting or once
    ``abandon`` is set.

    ``given_up`` is shared by the waits of one writer for one folder: set when any of them runs
    out of time, it makes every other wait, now or later, give up after one try, until one gets
    the lock again (and clears it). A frozen holder so costs that writer one deadline in all, not
    one per file or per wave of threads.

    ``flock`` on the folder itself, so nothing is added to a folder the client reads. A fresh
    descriptor each time: flock excludes per open file description, so threads of one process
    exclude each other too. Closing the descriptor releases the lock, also when a process dies.
    Never a blocking ``flock``: a holder that is frozen (SIGSTOP, a paused container, a hung
    network file system) would keep this thread, and the process's exit, waiting forever.
    """
    clock = _WaitClock()

    def stopped() -> bool:
        return (abandon is not None and abandon.is_set()) or (
            given_up is not None and given_up.is_set()
        )

    def give_up_now() -> bool:
        if stopped():
            return True
        if clock.total >= timeout:
            if given_up is not None:
                given_up.set()
            return True
        return False

    def held() -> LockHeld:
        return LockHeld(folder, lock_holder(folder), clock.total)

    # Our own writer threads: the deadline runs only while none of them takes a turn. A queue
    # that moves is no one's holding, however long this thread waits in it (the lock is not
    # fair, and many threads on a slow folder, or a pause while one holds it, made a thread
    # defer its file, blaming "another process"); a sibling that holds the folder and does not
    # let go (a write hung on a network mount) is waited for one deadline.
    turns = _turns(folder)
    taken = turns.taken
    while not turns.lock.acquire(timeout=_LOCK_MAX_RETRY):
        clock.waited(_LOCK_MAX_RETRY)
        if turns.taken != taken:
            taken, clock = turns.taken, _WaitClock()
        if give_up_now():
            raise held()
    turns.taken += 1
    clock = _WaitClock()
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            delay = _LOCK_FIRST_RETRY
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if give_up_now():
                        raise held() from None
                    pause = min(delay, max(0.0, timeout - clock.total))
                    if abandon is not None:
                        abandon.wait(pause)
                    else:
                        time.sleep(pause)
                    clock.waited(pause)
                    delay = min(delay * 2, _LOCK_MAX_RETRY)
            if given_up is not None:
                given_up.clear()  # the folder moves again: waits get their full deadline
            yield
        finally:
            os.close(fd)
    finally:
        turns.lock.release()


def lock_holder(path: Path) -> str:
    """Who holds a ``flock`` on ``path``: "pid N (command)" from /proc/locks and
    /proc/N/comm (Linux), "pid N" when its command is not visible, else "another process"; a
    writer thread of this very process is said to be one (never another process's pid)."""
    try:
        info = os.stat(path)
        table = Path("/proc/locks").read_text()
    except OSError:
        return "another process"
    inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF"; a waiter's line has "->".
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != inode:
            continue
        pid = fields[4]
        if not pid.isdigit() or pid == "0":  # in another pid namespace
            return "another process"
        if int(pid) == os.getpid():
            return OWN_WRITER
        try:
            command = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return f"pid {pid}"
        return f"pid {pid} ({command})"
    return "another process"
