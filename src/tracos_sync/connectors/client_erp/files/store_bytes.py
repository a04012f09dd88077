"""A file of a ``FileStore`` as a seekable binary file, for the streaming decoder (``Parts``,
``check_shape``), which reads files synchronously: run in a worker thread, each read it makes is
the store's ``read_at`` on the event loop, waited for in the thread. So a large file on an SFTP
server is decoded a part at a time, its bytes held a buffer at a time, never whole."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import PurePosixPath

from .store import FileStore

# Bytes asked for at once: SFTP pipelines a large read into many requests in flight.
BUFFER_BYTES = 1 << 20


class StoreBytes(io.RawIOBase):
    """``path`` of ``store`` (``size`` bytes when listed; reads end there), read from a worker
    thread while ``loop`` runs. Never read on the loop's own thread: it would wait on itself."""

    def __init__(
        self, store: FileStore, path: PurePosixPath, size: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self._store = store
        self._path = path
        self._size = size
        self._loop = loop
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._position)
        if want <= 0:
            return 0
        read = self._store.read_at(self._path, self._position, want)
        data = asyncio.run_coroutine_threadsafe(read, self._loop).result()
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def store_file(
    store: FileStore, path: PurePosixPath, size: int, loop: asyncio.AbstractEventLoop
) -> io.BufferedReader:
    return io.BufferedReader(StoreBytes(store, path, size, loop), BUFFER_BYTES)
