"""The SFTP source's own judgement of what it read, on a local store (the store contract,
tests/contract/test_file_store_contract.py, proves the SFTP store reports the same): a file
changed or swapped between the listing and the claim is given back, never applied."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from pathlib import Path, PurePosixPath

import orjson
import pytest
from structlog.testing import capture_logs

from tests.builders import client_record
from tracos_sync.connectors.client_erp.files.local_store import LocalStore
from tracos_sync.connectors.client_erp.files.sftp.archiving import Archives, Claimed, ClaimLost
from tracos_sync.connectors.client_erp.files.sftp.settings import SftpFolderSettings
from tracos_sync.connectors.client_erp.files.sftp.source import SftpSource
from tracos_sync.connectors.client_erp.files.store import Entry, StoreUnavailable, kind_of
from tracos_sync.domain.errors import DestinationUnwritable
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit
from tracos_sync.mapping import builtin_mapping

LONG_AGO = 1_700_000_000


class SwappingStore(LocalStore):
    """A local store whose listing is followed, before anything else, by another writer's
    change to one name (as a client's upload racing the claim); it reads through a link as an
    SFTP server does (its open follows links), and says so only in the look after."""

    def __init__(self, change: str) -> None:
        self.change = change

    async def scan(self, folder: PurePosixPath) -> list[Entry]:
        entries = await super().scan(folder)
        target = Path(folder) / "1.json"
        if target.exists() and self.change:
            size = target.stat().st_size
            target.unlink()
            if self.change == "link":
                # The same size (a link's is its target's length) and time: only its kind
                # differs. Absolute, so that it still points somewhere once claimed.
                other = Path(folder) / ("o" * (size - len(str(folder)) - 1))
                other.write_bytes(b"y" * size)
                os.symlink(other, target)
            else:
                target.write_bytes(b" " * (size + 10) if self.change == "grew" else b"{")
            os.utime(target, (LONG_AGO, LONG_AGO), follow_symlinks=False)
            self.change = ""
        return entries

    async def read_listed(self, path: PurePosixPath, listed: Entry) -> tuple[bytes, Entry]:
        return await asyncio.to_thread(_read_following_links, Path(path), listed)


def _read_following_links(path: Path, listed: Entry) -> tuple[bytes, Entry]:
    data = path.read_bytes()[: listed.size]
    info = path.lstat()
    return data, Entry(path.name, info.st_size, info.st_mtime, kind_of(info.st_mode))


def _source(tmp_path: Path, store: LocalStore) -> SftpSource:
    inbound = tmp_path / "in"
    inbound.mkdir()
    settings = SftpFolderSettings(
        data_inbound_dir=f"sftp://u@localhost{inbound}",
        data_outbound_dir=f"sftp://u@localhost{tmp_path / 'out'}",
        sftp_password="p",  # type: ignore[arg-type]
    )

    async def closed() -> None:
        return None

    return SftpSource(store, settings, builtin_mapping(), closed)


def _taken(source: SftpSource) -> list[InboundUnit]:
    async def go() -> list[InboundUnit]:
        await source.prepare()
        taken = [unit async for batch in source.batches(100) for unit in batch]
        await source.close()
        return taken

    return asyncio.run(go())


def test_a_file_swapped_for_a_link_between_listing_and_claim_is_given_back(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path, SwappingStore("link"))
    data = orjson.dumps(client_record(1))
    (tmp_path / "in" / "1.json").write_bytes(data)
    os.utime(tmp_path / "in" / "1.json", (LONG_AGO, LONG_AGO))
    (tmp_path / "in" / "2.json").write_bytes(orjson.dumps(client_record(2)))
    os.utime(tmp_path / "in" / "2.json", (LONG_AGO, LONG_AGO))

    taken = _taken(source)

    assert [unit.name for unit in taken] == ["2.json"]  # the other file costs nothing
    assert (tmp_path / "in" / "1.json").is_symlink()  # given back under its name


def test_a_file_that_changed_between_listing_and_claim_is_given_back(tmp_path: Path) -> None:
    for change in ("grew", "shrank"):
        folder = tmp_path / change
        folder.mkdir()
        source = _source(folder, SwappingStore(change))
        (folder / "in" / "1.json").write_bytes(orjson.dumps(client_record(1)))
        os.utime(folder / "in" / "1.json", (LONG_AGO, LONG_AGO))

        assert _taken(source) == [], change
        assert (folder / "in" / "1.json").exists(), change


def test_files_being_taken_when_the_caller_stops_are_given_back(tmp_path: Path) -> None:
    source = _source(tmp_path, LocalStore())
    for number in range(1, 9):
        (tmp_path / "in" / f"{number}.json").write_bytes(orjson.dumps(client_record(number)))
        os.utime(tmp_path / "in" / f"{number}.json", (LONG_AGO + number, LONG_AGO + number))

    async def first_batch_only() -> list[InboundUnit]:
        await source.prepare()
        async with contextlib.aclosing(source.batches(1)) as batches:
            first = await anext(batches)  # the others are being claimed meanwhile
        await source.complete(first)
        await source.close()
        return first

    first = asyncio.run(first_batch_only())

    assert [unit.name for unit in first] == ["1.json"]  # the oldest first
    left = sorted(p.name for p in (tmp_path / "in").iterdir() if p.is_file())
    assert left == [f"{n}.json" for n in range(2, 9)]
    assert not any((tmp_path / "in" / ".tracos-claims").rglob("*.json"))


def test_an_archive_that_finds_its_claim_gone_says_so_and_leaves_no_reason(
    tmp_path: Path,
) -> None:
    """A claim taken back by another instance: the archive says the claim was lost (not a
    failure of the archive folder), and a reject leaves no reason file without its file. A
    missing archive folder, the file still held, is not a lost claim."""
    folders = {name: tmp_path / name for name in ("in", "processed", "rejected", "claims")}
    for folder in folders.values():
        folder.mkdir()
    archives = Archives(
        LocalStore(),
        PurePosixPath(folders["in"]),
        PurePosixPath(folders["processed"]),
        PurePosixPath(folders["rejected"]),
    )
    held = folders["claims"] / "1.json"
    seen = Entry("1.json", 2, LONG_AGO, "file")
    claimed = Claimed("1.json", PurePosixPath(held), seen)

    with pytest.raises(ClaimLost):
        asyncio.run(archives.reject(claimed, [Problem("$", "bad")]))
    with pytest.raises(ClaimLost):
        asyncio.run(archives.archive(claimed))
    assert list(folders["rejected"].iterdir()) == []

    held.write_bytes(b"{}")
    folders["processed"].rmdir()
    with pytest.raises(FileNotFoundError):
        asyncio.run(archives.archive(claimed))
    assert held.exists()


def test_a_large_file_stopped_between_parts_goes_back_and_is_taken_again(
    tmp_path: Path,
) -> None:
    """A large file comes a part at a time; the caller stopping after its first part puts it
    back under its name (nothing left in hand, the large-file lock free), and the next sweep
    takes it again from its start to its last part."""
    source = _source(tmp_path, LocalStore())
    big = tmp_path / "in" / "big.json"
    big.write_bytes(orjson.dumps([client_record(n) for n in range(1, 20_001)]))  # > 4 MiB
    os.utime(big, (LONG_AGO, LONG_AGO))

    async def sweeps() -> tuple[list[InboundUnit], bool, list[InboundUnit]]:
        await source.prepare()
        async with contextlib.aclosing(source.batches(1000)) as batches:
            first = await anext(batches)
            await source.complete(first)
        back = big.exists()
        again = []
        async for batch in source.batches(1000):
            again += batch
            await source.complete(batch)
        await source.close()
        return first, back, again

    first, back, again = asyncio.run(asyncio.wait_for(sweeps(), 60))

    assert [(len(u.records), u.ends_input) for u in first] == [(1000, False)]
    assert back, "put back under its name"
    assert sum(len(u.records) for u in again) == 20_000
    assert [u.ends_input for u in again] == [False] * (len(again) - 1) + [True]
    assert (tmp_path / "in" / "processed" / "big.json").exists()
    assert not list((tmp_path / "in" / ".tracos-claims").rglob("*.json"))


def test_a_large_files_parts_follow_its_first_part_whatever_is_decoded_meanwhile(
    tmp_path: Path,
) -> None:
    """While small files ahead of a large one are handed out, the large one's first part is
    decoded in the background: its later parts still come only after it, in order."""
    source = _source(tmp_path, LocalStore())
    inbound = tmp_path / "in"
    for number in range(1, 5):  # the oldest: handed out first, two a batch
        (inbound / f"s{number}.json").write_bytes(orjson.dumps(client_record(900_000 + number)))
        os.utime(inbound / f"s{number}.json", (LONG_AGO + number, LONG_AGO + number))
    big = inbound / "big.json"
    big.write_bytes(orjson.dumps([client_record(n) for n in range(1, 20_001)]))  # > 4 MiB
    os.utime(big, (LONG_AGO + 10, LONG_AGO + 10))

    async def taken() -> list[InboundUnit]:
        await source.prepare()
        units: list[InboundUnit] = []
        async for batch in source.batches(2):
            units += batch
            await source.complete(batch)
            if len(units) == 2:  # the large file's first part decoded meanwhile
                for _ in range(6000):
                    streaming = source._large.streaming
                    if streaming is not None and streaming.open_parts():
                        break
                    await asyncio.sleep(0.01)
        await source.close()
        return units

    units = asyncio.run(asyncio.wait_for(taken(), 60))

    assert [u.name for u in units[:4]] == ["s1.json", "s2.json", "s3.json", "s4.json"]
    numbers = [record.number for u in units if u.name == "big.json" for record in u.records]
    assert numbers == list(range(1, 20_001))
    assert (inbound / "processed" / "big.json").exists()


class OutageStore(LocalStore):
    """A local store whose server goes away for a while: reads fail as an unreachable SFTP
    server's do (after the claims have landed), and, told so, archive moves too."""

    def __init__(self) -> None:
        self.down = False
        self.archives_down = False
        self.refused: set[str] = set()  # names whose archive move fails for that file alone

    async def read_listed(self, path: PurePosixPath, listed: Entry) -> tuple[bytes, Entry]:
        if self.down:
            raise StoreUnavailable(errno.ECONNREFUSED, "no connection for 30.0s")
        return await super().read_listed(path, listed)

    async def move_no_clobber(self, source: PurePosixPath, target: PurePosixPath) -> None:
        if target.parent.name == "processed":
            if self.archives_down:
                raise StoreUnavailable(errno.ECONNREFUSED, "no connection for 30.0s")
            if source.name in self.refused:
                raise PermissionError(errno.EACCES, "Permission denied", str(target))
        await super().move_no_clobber(source, target)


def _held(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "in" / ".tracos-claims").rglob("*.json"))


def test_a_watch_puts_back_what_an_outage_left_in_its_own_claim_folder(tmp_path: Path) -> None:
    """Hostile pass 2, F2: a take that failed after its claim landed (the server gone longer
    than SFTP_RETRY_SECONDS), and a batch applied whose archive failed so, left files in the
    live watch's claim folder for an hour (its own folder is never stale). The next sweep puts
    them back and takes them; a file whose archive failed for itself alone stays kept."""
    store = OutageStore()
    source = _source(tmp_path, store)
    for number in range(1, 7):
        (tmp_path / "in" / f"{number}.json").write_bytes(orjson.dumps(client_record(number)))
        os.utime(tmp_path / "in" / f"{number}.json", (LONG_AGO + number, LONG_AGO + number))

    async def sweep(size: int, archive: bool = True) -> list[str]:
        taken: list[str] = []
        async with contextlib.aclosing(source.batches(size)) as batches:
            async for batch in batches:
                taken += [unit.name for unit in batch]
                if archive:
                    await source.complete(batch)
        return taken

    async def watch() -> None:
        await source.prepare()
        store.archives_down = True
        with pytest.raises(DestinationUnwritable):  # a batch applied, its archive cut
            await sweep(2)
        store.archives_down = False
        assert _held(tmp_path) == ["1.json", "2.json"]
        store.down = True
        with pytest.raises(DestinationUnwritable):  # the takes fail once claimed
            await sweep(2)
        store.down = False
        assert _held(tmp_path)  # the failed takes' files are in our claim folder
        store.refused = {"3.json"}
        with capture_logs() as logs:
            assert sorted(await sweep(100)) == [f"{n}.json" for n in range(1, 7)]
        assert [e["file"] for e in logs if e["event"] == "inbound.archive_failed"] == ["3.json"]
        put_back = [e["file"] for e in logs if e["event"] == "sftp.claim_put_back"]
        assert "1.json" in put_back and "2.json" in put_back
        store.refused = set()
        with capture_logs() as logs:
            assert await sweep(100) == []  # the file kept is not put back by our own sweeps
        assert not [e for e in logs if e["event"] == "sftp.claim_put_back"]
        await source.close()

    asyncio.run(watch())
    archived = sorted(p.name for p in (tmp_path / "in" / "processed").iterdir())
    assert archived == ["1.json", "2.json", "4.json", "5.json", "6.json"]
    assert _held(tmp_path) == ["3.json"]


def test_a_dead_instances_cut_heartbeat_is_removed_not_put_back(tmp_path: Path) -> None:
    """A kill during a heartbeat leaves its entry (``.tracos-now.<random>.tmp``) in the claim
    folder: recovery removes it; only client files go back to the inbound folder."""
    source = _source(tmp_path, LocalStore())
    dead = tmp_path / "in" / ".tracos-claims" / "host-1-0000"
    dead.mkdir(parents=True)
    (dead / "1.json").write_bytes(orjson.dumps(client_record(1)))
    (dead / ".tracos-now.0123456789ab.tmp").write_bytes(b"")
    os.utime(dead, (LONG_AGO, LONG_AGO))

    async def sweep() -> list[str]:
        await source.prepare()
        taken: list[str] = []
        async for batch in source.batches(100):  # a suspect: taken alone, once the hand is back
            taken += [unit.name for unit in batch]
            await source.complete(batch)
        await source.close()
        return taken

    assert asyncio.run(asyncio.wait_for(sweep(), 10)) == ["1.json"]
    assert not list((tmp_path / "in").rglob(".tracos-now*"))
