"""Recovery's check that a claimed file was already archived (a move cut between OpenSSH's link
and unlink): the same size, time and bytes under its archive name, the bytes compared a piece at
a time, so that a large file is never read whole (twice) by a recovery."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path, PurePosixPath

import pytest

from tracos_sync.connectors.client_erp.files.local_store import LocalStore
from tracos_sync.connectors.client_erp.files.sftp.archiving import (
    COMPARE_PIECE_BYTES,
    Archives,
    Claimed,
)

SIZE = 3 * COMPARE_PIECE_BYTES + 5


class CountingStore(LocalStore):
    def __init__(self) -> None:
        self.most = 0

    async def read(self, path: PurePosixPath, max_bytes: int) -> bytes:
        raise AssertionError("a whole read")

    async def read_at(self, path: PurePosixPath, offset: int, size: int) -> bytes:
        self.most = max(self.most, size)
        return await super().read_at(path, offset, size)


def _setup(tmp_path: Path) -> tuple[CountingStore, Archives, Claimed, Path]:
    store = CountingStore()
    inbound = tmp_path / "in"
    claims, processed = inbound / ".tracos-claims" / "dead", inbound / "processed"
    claims.mkdir(parents=True)
    processed.mkdir()
    claimed = claims / "big.json"
    claimed.write_bytes(b"[" + b" " * (SIZE - 2) + b"]")
    seen = asyncio.run(store.stat(PurePosixPath(claimed)))
    archives = Archives(
        store, PurePosixPath(inbound), PurePosixPath(processed), PurePosixPath(inbound / "rejected")
    )
    return store, archives, Claimed("big.json", PurePosixPath(claimed), seen), processed


def test_a_large_file_archived_and_still_claimed_is_known_by_pieces(tmp_path: Path) -> None:
    store, archives, claimed, processed = _setup(tmp_path)
    os.link(claimed.path, processed / "big.json")

    assert asyncio.run(archives.already_archived(claimed)) is True
    assert store.most == COMPARE_PIECE_BYTES


@pytest.mark.parametrize("where", ["last piece", "a link"])
def test_a_copy_of_the_same_size_and_time_but_other_bytes_is_not_it(
    tmp_path: Path, where: str
) -> None:
    _, archives, claimed, processed = _setup(tmp_path)
    copy = processed / "big.json"
    if where == "a link":
        os.symlink(claimed.path, copy)
    else:
        data = bytearray(Path(claimed.path).read_bytes())
        data[-3] = ord("x")
        copy.write_bytes(bytes(data))
    mtime = claimed.seen.mtime
    os.utime(copy, (mtime, mtime), follow_symlinks=False)

    assert asyncio.run(archives.already_archived(claimed)) is False
