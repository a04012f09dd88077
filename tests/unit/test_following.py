"""Watch mode's inbound under a steady flow (``FolderSource.following``): the files that arrive
while a batch is applied make the next batch of the same sweep, each file taken exactly once;
a file that cannot be read is tried once per sweep, not at every look; the sweep ends when
asked and nothing came, or once its time is up."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import structlog.testing

from tests.builders import client_record, read_json, write_json
from tracos_sync.connectors.client_erp.files.following import FOLLOW_INLINE_BYTES
from tracos_sync.connectors.client_erp.files.settings import FolderSettings
from tracos_sync.connectors.client_erp.files.source import FolderSource
from tracos_sync.domain.ports import InboundUnit, SupportsFollowing
from tracos_sync.mapping import builtin_mapping


def drop(folder: Path, number: int) -> None:
    tmp = folder / f".{number}.json.tmp"
    write_json(tmp, client_record(number))
    os.rename(tmp, folder / f"{number}.json")


@contextlib.asynccontextmanager
async def folder_source(folder: Path) -> AsyncIterator[FolderSource]:
    source = FolderSource(FolderSettings(data_inbound_dir=folder), builtin_mapping())
    await source.prepare()
    try:
        yield source
    finally:
        await source.close()


def numbers(units: list[InboundUnit]) -> list[int]:
    return [record.number for unit in units for record in unit.records]


async def test_files_arriving_while_a_batch_is_applied_make_the_next_batch(
    tmp_path: Path,
) -> None:
    inbound = tmp_path / "in"
    async with folder_source(inbound) as source:
        assert isinstance(source, SupportsFollowing)
        drop(inbound, 1)
        batches = source.following(1000, 30)
        taken: list[list[int]] = []
        async with contextlib.aclosing(batches):
            async for units in batches:
                taken.append(numbers(units))
                await source.complete(units)
                if len(taken) == 1:  # "applying" the first batch: two files arrive meanwhile
                    drop(inbound, 2)
                    await asyncio.sleep(0.05)
                    drop(inbound, 3)
                    await asyncio.sleep(0.05)
                elif len(taken) == 2:  # one arrives at the very end of the apply
                    drop(inbound, 4)
        assert taken == [[1], [2, 3], [4]], "one sweep, each file once, nothing left"
        assert sorted(p.name for p in (inbound / "processed").iterdir()) == [
            "1.json",
            "2.json",
            "3.json",
            "4.json",
        ]
        assert not list(inbound.glob("*.json"))


async def test_a_batch_holds_at_most_max_records_and_a_backlog_comes_in_turn(
    tmp_path: Path,
) -> None:
    inbound = tmp_path / "in"
    async with folder_source(inbound) as source:
        for number in range(1, 56):
            drop(inbound, number)
        sizes = []
        seen: list[int] = []
        async with contextlib.aclosing(source.following(20, 30)) as batches:
            async for units in batches:
                sizes.append(len(units))
                seen += numbers(units)
                await source.complete(units)
        assert sizes == [20, 20, 15]
        assert sorted(seen) == list(range(1, 56))


async def test_it_ends_once_its_time_is_up_though_files_keep_coming(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    async with folder_source(inbound) as source:
        drop(inbound, 1)
        count = 0
        async with contextlib.aclosing(source.following(1000, 0.3)) as batches:
            async for units in batches:
                count += 1
                await source.complete(units)
                drop(inbound, 100 + count)  # a file arrives during every batch
                await asyncio.sleep(0.05)
                assert count < 50, "never ends"
        assert count < 15
        # What it left is there for the next sweep.
        assert len(list(inbound.glob("*.json"))) <= 1


async def test_a_stopped_consumer_gives_back_what_it_never_saw(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    async with folder_source(inbound) as source:
        drop(inbound, 1)
        async with contextlib.aclosing(source.following(1000, 30)) as batches:
            async for units in batches:
                assert numbers(units) == [1]
                await source.complete(units)
                drop(inbound, 2)  # claimed while the first batch is applied...
                await asyncio.sleep(0.05)
                break  # ...and the consumer stops (a signal)
        assert (inbound / "2.json").exists(), "given back to the folder"
        assert not any((inbound / ".claims").rglob("*.json"))


async def test_an_unreadable_file_is_tried_once_per_sweep_not_at_every_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound = tmp_path / "in"
    async with folder_source(inbound) as source:
        reads: list[str] = []
        real_read = source._taker.read_unit

        def read(name: str, path: Path, size: int) -> InboundUnit:
            reads.append(path.name)
            if path.name == "9.json":
                raise OSError(errno.EIO, "Input/output error")
            return real_read(name, path, size)

        monkeypatch.setattr(source._taker, "read_unit", read)
        drop(inbound, 9)
        drop(inbound, 1)
        async with contextlib.aclosing(source.following(1000, 30)) as batches:
            async for units in batches:
                await source.complete(units)
                await asyncio.sleep(0.2)  # twenty looks while "applying"
        assert reads.count("9.json") == 1
        assert (inbound / "9.json").exists(), "given back, for the next sweep"


async def test_in_a_dry_run_it_reads_in_place_once(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    inbound.mkdir()
    drop(inbound, 1)
    source = FolderSource(FolderSettings(data_inbound_dir=inbound), builtin_mapping(), dry_run=True)
    await source.prepare()
    taken = []
    async with contextlib.aclosing(source.following(1000, 30)) as batches:
        async for units in batches:
            taken.append(numbers(units))
            await asyncio.sleep(0.05)
    await source.close()
    assert taken == [[1]]
    assert (inbound / "1.json").exists()


async def test_a_large_file_is_read_off_the_event_loops_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound = tmp_path / "in"
    async with folder_source(inbound) as source:
        threads: dict[str, str] = {}
        real_read = source._taker.read_unit

        def read(name: str, path: Path, size: int) -> InboundUnit:
            threads[path.name] = threading.current_thread().name
            return real_read(name, path, size)

        monkeypatch.setattr(source._taker, "read_unit", read)
        drop(inbound, 1)
        padded = orjson.dumps(client_record(2)) + b" " * (FOLLOW_INLINE_BYTES + 1)
        (inbound / "2.json").write_bytes(padded)
        taken: list[int] = []
        async with contextlib.aclosing(source.following(1000, 30)) as batches:
            async for units in batches:
                taken += numbers(units)
                await source.complete(units)
        assert sorted(taken) == [1, 2]
        main = threading.main_thread().name
        assert threads["1.json"] == main
        assert threads["2.json"] != main


async def test_a_reused_name_is_claimed_beside_the_file_in_hand_never_over_it(
    tmp_path: Path,
) -> None:
    """The client writes ``wo.json`` again while the first is claimed and being applied: the
    second is claimed beside it, and both are applied and archived (a hostile tester lost orders
    when the claim replaced the file in hand)."""
    inbound = tmp_path / "in"

    def drop_as(number: int) -> None:
        write_json(inbound / ".wo.tmp", client_record(number))
        os.rename(inbound / ".wo.tmp", inbound / "wo.json")

    async with folder_source(inbound) as source:
        drop_as(1)
        taken: list[int] = []
        async with contextlib.aclosing(source.following(1000, 30)) as batches:
            async for units in batches:
                taken += numbers(units)
                if taken == [1]:  # applying the first: the name comes again, twice
                    drop_as(2)
                    await asyncio.sleep(0.05)
                    drop_as(3)
                    await asyncio.sleep(0.05)
                await source.complete(units)
        assert sorted(taken) == [1, 2, 3]
        archived = sorted((inbound / "processed").iterdir())
        assert len(archived) == 3
        assert sorted(read_json(path)["orderNo"] for path in archived) == [1, 2, 3]
        assert not list(inbound.glob("*.json"))


def test_a_file_that_stays_unreadable_is_said_once_a_minute_not_at_every_look() -> None:
    """Watch looks at the folder every few milliseconds under a flow: one unreadable file made
    hundreds of warnings in seconds (found by a hostile tester)."""
    from tracos_sync.connectors.client_erp.files.repeats import Repeats

    repeats = Repeats()
    with structlog.testing.capture_logs() as logged:
        for _ in range(100):
            repeats.warn("inbound.file_left", "x.json", "cannot be read (Permission denied)")
        repeats.warn("inbound.file_left", "x.json", "another reason")
        repeats.warn("inbound.file_left", "y.json", "cannot be read (Permission denied)")
    said = [(e["file"], e["reason"]) for e in logged if e["log_level"] == "warning"]
    assert said == [
        ("x.json", "cannot be read (Permission denied)"),
        ("x.json", "another reason"),
        ("y.json", "cannot be read (Permission denied)"),
    ]
