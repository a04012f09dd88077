"""One contract for every ``FileStore``: a local folder (``LocalStore``) and a folder on Debian's
OpenSSH server (``SftpStore``, tests/support/sshd.py) must behave the same for what the folder
transports rely on: a move never replaces, an exclusive create never replaces, an atomic write
replaces whole, a private move is one rename, and failures are the standard ``OSError`` kinds."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import asyncssh
import pytest

from tests.support.sftp import sftp_store
from tests.support.sshd import Sshd
from tracos_sync.connectors.client_erp.files.local_store import LocalStore
from tracos_sync.connectors.client_erp.files.store import Entry, FileStore


class World:
    """A store and the local path of the folder it serves (to look behind its back)."""

    def __init__(self, store: FileStore, folder: Path, give: Callable[[Path], None]) -> None:
        self.store = store
        self.folder = folder
        self.give = give  # make a file we wrote ours to the server's user

    def at(self, *names: str) -> PurePosixPath:
        return PurePosixPath(self.folder, *names)

    def put(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        self.give(path)
        return path


@pytest.fixture(params=["local", "sftp"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "local":
        yield World(LocalStore(), tmp_path, lambda _: None)
        return
    sshd: Sshd = request.getfixturevalue("sshd")
    store = sftp_store(sshd)
    yield World(store, sshd.served, sshd.give_to_server)
    asyncio.run(store.close())


def run(world: World, step: Callable[[FileStore], Awaitable[Any]]) -> Any:
    """One event loop per step: the SFTP store reconnects in each (as a new run would)."""

    async def go() -> Any:
        try:
            return await step(world.store)
        finally:
            await world.store.close()

    return asyncio.run(go())


def test_scan_names_entries_with_their_kind_size_and_time(world: World) -> None:
    world.put("a.json", b"12345")
    (world.folder / "sub").mkdir()
    os.symlink("a.json", world.folder / "link.json")
    os.utime(world.folder / "a.json", (1_700_000_000, 1_700_000_000))

    entries = {e.name: e for e in run(world, lambda s: s.scan(world.at()))}

    assert set(entries) == {"a.json", "sub", "link.json"}
    assert (entries["a.json"].kind, entries["a.json"].size) == ("file", 5)
    assert entries["a.json"].mtime == 1_700_000_000
    assert entries["sub"].kind == "folder"
    assert entries["link.json"].kind == "link"


def test_read_is_capped_and_refuses_links_and_missing_files(world: World) -> None:
    world.put("a.json", b"x" * 100)
    os.symlink("a.json", world.folder / "link.json")

    assert run(world, lambda s: s.read(world.at("a.json"), 1000)) == b"x" * 100
    assert run(world, lambda s: s.read(world.at("a.json"), 10)) == b"x" * 11
    with pytest.raises(OSError):  # noqa: PT011 - the kind of refusal differs; it is refused
        run(world, lambda s: s.read(world.at("link.json"), 1000))
    with pytest.raises(FileNotFoundError):
        run(world, lambda s: s.read(world.at("gone.json"), 1000))


def _listed(world: World, name: str) -> Entry:
    return run(world, lambda s: s.stat(world.at(name)))  # type: ignore[no-any-return]


def test_a_listed_file_is_read_whole_with_how_it_looks_after(world: World) -> None:
    world.put("a.json", b"x" * 300_000)  # more than one SFTP read
    listed = _listed(world, "a.json")

    data, after = run(world, lambda s: s.read_listed(world.at("a.json"), listed))

    assert data == b"x" * 300_000
    assert after == listed


@pytest.mark.parametrize("size", [100, 300_000])  # one SFTP read, several
@pytest.mark.parametrize("change", ["grows", "rewritten in place"])
def test_a_listed_file_written_to_after_its_look_shows_it(
    world: World, monkeypatch: pytest.MonkeyPatch, size: int, change: str
) -> None:
    """A writer that still had the file open appends, or rewrites it in place at the same size
    (a torn version, if read), between the store's look and its read."""
    path = world.put("a.json", b"x" * size)
    past = time.time() - 600
    os.utime(path, (past, past))
    listed = _listed(world, "a.json")

    def write() -> None:
        with path.open("ab" if change == "grows" else "r+b") as file:
            file.write(b"y" * 10)

    if isinstance(world.store, LocalStore):
        real_lstat = os.lstat

        def lstat(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            looked = real_lstat(target, *args, **kwargs)
            if str(target) == str(path):
                write()
            return looked

        monkeypatch.setattr(os, "lstat", lstat)
    else:
        real = asyncssh.SFTPClient.lstat

        async def sftp_lstat(self: asyncssh.SFTPClient, target: Any, *args: Any) -> Any:
            looked = await real(self, target, *args)
            write()
            return looked

        monkeypatch.setattr(asyncssh.SFTPClient, "lstat", sftp_lstat)

    _, after = run(world, lambda s: s.read_listed(world.at("a.json"), listed))

    assert (after.size, after.mtime) != (listed.size, listed.mtime)


def test_a_file_is_read_a_piece_at_any_offset(world: World) -> None:
    data = bytes(range(256)) * 2000  # 512,000 bytes: a piece spans several SFTP reads
    world.put("a.json", data)
    at = world.at("a.json")

    assert run(world, lambda s: s.read_at(at, 0, 300_000)) == data[:300_000]
    assert run(world, lambda s: s.read_at(at, 300_000, 300_000)) == data[300_000:]
    assert run(world, lambda s: s.read_at(at, 512_000, 10)) == b""
    with pytest.raises(FileNotFoundError):
        run(world, lambda s: s.read_at(world.at("gone.json"), 0, 10))


def test_a_listed_file_that_grew_shrank_or_became_a_link_or_fifo_shows_it_unopened(
    world: World,
) -> None:
    world.put("a.json", b"x" * 100)
    listed = _listed(world, "a.json")
    for change in ("grew", "shrank", "link", "fifo"):
        (world.folder / "a.json").unlink()
        if change == "link":
            world.put("b.json", b"x" * 100)
            os.symlink("b.json", world.folder / "a.json")
        elif change == "fifo":  # an open would wait for a writer for ever
            os.mkfifo(world.folder / "a.json")
            world.give(world.folder / "a.json")
        else:
            world.put("a.json", b"x" * (150 if change == "grew" else 50))
        os.utime(world.folder / "a.json", (listed.mtime, listed.mtime), follow_symlinks=False)

        data, after = run(world, lambda s: s.read_listed(world.at("a.json"), listed))

        assert (after.size, after.kind) != (listed.size, "file"), change
        if change in ("link", "fifo"):
            assert data == b"", change
    with pytest.raises(FileNotFoundError):
        run(world, lambda s: s.read_listed(world.at("gone.json"), listed))


def test_touch_sets_a_folders_time_by_the_stores_clock_not_ours(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    (world.folder / "claims").mkdir()
    world.give(world.folder / "claims")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # our clock an hour ahead

    now = run(world, lambda s: s.touch(world.at("claims")))

    monkeypatch.undo()
    assert abs((world.folder / "claims").stat().st_mtime - time.time()) < 60
    # What it set, returned (SFTP's times are whole seconds).
    assert abs(now - (world.folder / "claims").stat().st_mtime) < 1


def test_a_move_never_replaces_and_says_what_stopped_it(world: World) -> None:
    world.put("a.json", b"a")
    world.put("b.json", b"b")

    with pytest.raises(FileExistsError):
        run(world, lambda s: s.move_no_clobber(world.at("a.json"), world.at("b.json")))
    assert (world.folder / "a.json").read_bytes() == b"a"
    assert (world.folder / "b.json").read_bytes() == b"b"

    run(world, lambda s: s.move_no_clobber(world.at("a.json"), world.at("c.json")))
    assert not (world.folder / "a.json").exists()
    assert (world.folder / "c.json").read_bytes() == b"a"
    with pytest.raises(FileNotFoundError):
        run(world, lambda s: s.move_no_clobber(world.at("a.json"), world.at("d.json")))


def test_create_exclusive_never_replaces_and_leaves_no_temp(world: World) -> None:
    run(world, lambda s: s.create_exclusive(world.at("r.json"), b"first"))
    with pytest.raises(FileExistsError):
        run(world, lambda s: s.create_exclusive(world.at("r.json"), b"second"))

    assert (world.folder / "r.json").read_bytes() == b"first"
    assert sorted(p.name for p in world.folder.iterdir()) == ["r.json"]


def test_write_atomic_replaces_whole_and_leaves_no_temp(world: World) -> None:
    world.put("o.json", b"old")
    run(world, lambda s: s.write_atomic(world.at("o.json"), b"new" * 10_000))

    assert (world.folder / "o.json").read_bytes() == b"new" * 10_000
    assert sorted(p.name for p in world.folder.iterdir()) == ["o.json"]


def test_mkdir_makes_parents_touch_unlink_and_rmdir(world: World) -> None:
    run(world, lambda s: s.mkdir(world.at("x", "y")))
    run(world, lambda s: s.mkdir(world.at("x", "y")))  # already there: fine
    assert (world.folder / "x" / "y").is_dir()
    os.utime(world.folder / "x", (1_000_000, 1_000_000))

    run(world, lambda s: s.touch(world.at("x")))
    assert (world.folder / "x").stat().st_mtime > 1_000_000
    run(world, lambda s: s.rmdir(world.at("x", "y")))
    assert not (world.folder / "x" / "y").exists()
    world.put("z.json", b"z")
    run(world, lambda s: s.unlink(world.at("z.json")))
    assert not (world.folder / "z.json").exists()


def test_a_file_the_server_user_may_not_read_is_a_permission_error(world: World) -> None:
    if isinstance(world.store, LocalStore) and os.geteuid() == 0:
        pytest.skip("root reads every file; the SFTP server runs unprivileged")
    world.put("secret.json", b"{}").chmod(0)

    with pytest.raises(PermissionError):
        run(world, lambda s: s.read(world.at("secret.json"), 1000))
