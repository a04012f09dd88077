"""The inbound folder's file events (watchfiles): what wakes, when, and what cannot be watched."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from watchfiles import Change

from tracos_sync.connectors.client_erp.files import FolderSettings
from tracos_sync.connectors.client_erp.files.connector import FolderConnector
from tracos_sync.connectors.client_erp.files.events import Due, may_be_input
from tracos_sync.connectors.client_erp.files.folder_watch import FolderWatch
from tracos_sync.domain.ports import SupportsInputEvents
from tracos_sync.mapping import builtin_mapping


def ready_files(folder: Path, min_age_seconds: float) -> AsyncIterator[None]:
    """One folder followed, as a folder connector follows its inbound folder."""
    return FolderWatch().ready_files(folder, min_age_seconds)


@pytest.mark.parametrize(
    ("change", "name", "wakes"),
    [
        (Change.added, "42.json", True),  # renamed in, or created
        (Change.modified, "42.json", True),  # a writer still at it (minimum age)
        (Change.deleted, "42.json", False),  # our own claim renames it away
        (Change.added, ".42.json.tmp", False),  # a client's temp file
        (Change.added, ".hidden.json", False),
        (Change.added, "notes.txt", False),
    ],
)
def test_only_names_the_sweep_would_take_wake_it(change: Change, name: str, wakes: bool) -> None:
    assert may_be_input(change, f"/data/inbound/{name}") is wakes


def test_the_folder_connector_offers_input_events() -> None:
    connector = FolderConnector(FolderSettings(), builtin_mapping())
    assert isinstance(connector, SupportsInputEvents)


async def test_a_file_renamed_in_wakes_after_the_first_wake_that_says_it_watches(
    tmp_path: Path,
) -> None:
    events = ready_files(tmp_path, 0)
    async with contextlib.aclosing(events):
        await asyncio.wait_for(anext(events), 10)  # watching now
        tmp = tmp_path / ".1.json.tmp"
        tmp.write_text("{}")
        os.rename(tmp, tmp_path / "1.json")
        await asyncio.wait_for(anext(events), 10)


async def test_a_young_file_wakes_only_once_its_minimum_age_is_over(tmp_path: Path) -> None:
    events = ready_files(tmp_path, 0.3)
    async with contextlib.aclosing(events):
        await asyncio.wait_for(anext(events), 10)
        (tmp_path / "1.json").write_text("{}")
        written = time.monotonic()
        await asyncio.wait_for(anext(events), 10)
        assert time.monotonic() - written >= 0.3


async def test_a_young_file_there_before_the_watch_began_is_woken_for(tmp_path: Path) -> None:
    (tmp_path / "1.json").write_text("{}")
    events = ready_files(tmp_path, 0.3)
    async with contextlib.aclosing(events):
        await asyncio.wait_for(anext(events), 10)
        watching = time.monotonic()
        await asyncio.wait_for(anext(events), 10)
        assert time.monotonic() - watching >= 0.3


async def test_a_folder_that_cannot_be_watched_says_so(tmp_path: Path) -> None:
    events = ready_files(tmp_path / "missing", 0)
    with pytest.raises(FileNotFoundError):
        async with contextlib.aclosing(events):
            await asyncio.wait_for(anext(events), 10)


async def drain(events: AsyncIterator[None]) -> None:
    async for _ in events:
        pass


async def test_a_folder_removed_while_watched_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    events = ready_files(folder, 0)
    async with contextlib.aclosing(events):
        await asyncio.wait_for(anext(events), 10)
        shutil.rmtree(folder)
        # Its watch is gone with it: without this, nothing would ever wake again.
        with pytest.raises(FileNotFoundError, match="was removed"):
            await asyncio.wait_for(drain(events), 10)


async def test_closing_stops_the_watching_thread_at_once(tmp_path: Path) -> None:
    events = ready_files(tmp_path, 0)
    await asyncio.wait_for(anext(events), 10)
    started = time.monotonic()
    await events.aclose()
    # watchfiles' thread checks the stop every step; a cancel alone would wait for its timeout.
    assert time.monotonic() - started < 0.5


async def test_a_steady_stream_of_changes_does_not_push_the_wake_back() -> None:
    ready = asyncio.Event()
    due = Due(0.2, ready)
    started = time.monotonic()
    try:
        while not ready.is_set():  # a change every 10 ms, for as long as it takes
            due.changed()
            await asyncio.sleep(0.01)
            assert time.monotonic() - started < 5, "the wake kept moving"
    finally:
        due.cancel()
    assert time.monotonic() - started >= 0.2
