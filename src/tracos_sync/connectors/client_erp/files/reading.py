"""Reading one inbound file: opened under the folder's rules (no FIFO, no device, no link that
leaves the folder), then read whole when it is small or decoded a part at a time when it is large,
so that memory per file stays bounded whatever its size and shape (a large file that cannot hold
records where the mapping says is refused from its first bytes)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO

from tracos_sync.domain.model import Problem
from tracos_sync.mapping.reasons import reason

from ..codec import Decoded, ParseError, RecordDecoder
from ..streaming import array_items

# A file larger than this is decoded a part at a time (a part holds at most a batch of
# records), or refused unread when its shape cannot hold them; a smaller one is read and parsed
# whole, the fast path.
STREAM_MIN_BYTES = 4 * 1024 * 1024
# A large file that is one object (not an envelope) is one record, read whole, up to MongoDB's
# limit for one document: a larger record could never be stored.
ONE_RECORD_MAX_BYTES = 16 * 1024 * 1024


def open_input(path: Path, inbound: Path) -> tuple[int, os.stat_result]:
    """A descriptor of ``path`` and what it is. Only a link to a file in the inbound folder itself
    is followed (checked now, not just when listed), and its target without a further link. A
    relative link is read as it was written: relative to the inbound folder, where the client put
    it, not to the claim folder it has been moved into. Non-blocking open: a FIFO swapped in
    after listing must not hang the run."""
    if path.is_symlink():
        target = Path(os.readlink(path))
        path = (target if target.is_absolute() else inbound / target).resolve()
        if path.parent != inbound.resolve():
            raise OSError(errno.EPERM, "symlink leads outside the inbound folder")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def unchanged(before: os.stat_result, now: os.stat_result) -> bool:
    """The same file with the same size and mtime: nobody wrote to it in between."""
    return (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns) == (
        now.st_dev,
        now.st_ino,
        now.st_size,
        now.st_mtime_ns,
    )


class Parts:
    """The records of a large array file, decoded a part at a time. ``done`` once the last part
    has been handed out (the file is then closed). ``next_link``: the file says it is one page
    of a paged export."""

    def __init__(self, handle: IO[bytes], decoder: RecordDecoder) -> None:
        """Raises, before any record is read, ``NotRecords`` or ``NoRecords`` (the file cannot
        hold records where the mapping says) or ``ParseError`` (the codec's ``array_items``)."""
        self._handle = handle
        self._decoder = decoder
        stream = array_items(handle, decoder.mapping.records_path)
        self._items = enumerate(stream.items)
        self.next_link = stream.next_link
        self.done = False

    def next(self, size: int) -> Decoded:
        """The next part: at most ``size`` records (at least one)."""
        size = max(size, 1)
        out = Decoded()
        try:
            self._decoder.decode_items(islice(self._items, size), out)
        except ParseError as exc:
            out.problems.append(Problem("$", reason(str(exc))))
            out.rejected += 1
            out.unparsable = True
            self.close()
            return out
        if len(out.records) + out.rejected < size:
            self.close()
        return out

    def close(self) -> None:
        self.done = True
        with contextlib.suppress(OSError):
            self._handle.close()


@dataclass(eq=False)
class Held:
    """A file in hand: where it is now (claimed, or in place for a dry run), what it was when
    opened (``None`` for a link: not compared), and what its parts found so far."""

    name: str
    path: Path
    opened: os.stat_result | None
    problems: list[Problem] = field(default_factory=list)
    parts: Parts | None = None
    left: bool = False  # put back already (maybe still being written): nothing to archive
