"""Units of the folder connector's "a file is taken whole": the streaming parser keeps the strict
rules of the whole-file one, a copy across file systems never removes a source that changed, a
file that changes in hand goes back, warnings are kept per folder, a vanished folder is named."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import client_record, write_json
from tests.support.claims import left_in_claims
from tracos_sync.connectors.client_erp.codec import (
    ParseError,
    parse_json,
)
from tracos_sync.connectors.client_erp.files import moves, temps
from tracos_sync.connectors.client_erp.files.claims import ClaimFolder
from tracos_sync.connectors.client_erp.files.listing import list_waiting
from tracos_sync.connectors.client_erp.files.repeats import Repeats, said_in
from tracos_sync.connectors.client_erp.files.settings import FolderSettings
from tracos_sync.connectors.client_erp.files.source import FolderSource
from tracos_sync.connectors.client_erp.streaming import NotAnArray, array_items
from tracos_sync.mapping import builtin_mapping


def streamed(raw: bytes) -> list[Any]:
    return list(array_items(io.BytesIO(raw)))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'[{"a": 1}, {"b": 1, "b": 2}]', "duplicate key 'b'"),
        (b'[{"a": {"c": 1, "c": 1}}]', "duplicate key 'c'"),
        (b'[{"a": NaN}]', "not valid JSON"),
        (b'[{"a": Infinity}]', "not valid JSON"),
        (b'[{"a": -Infinity}]', "not valid JSON"),
        (b'[{"a": "\xff"}]', "not"),
        (b'[{"a": 1},', "not valid JSON"),
        (b'[{"a": 1}] [2]', "not valid JSON"),
        (b'[{"a": "\x01"}]', "not valid JSON"),
        # The same through the exact (pure-Python) backend, chosen for a run of 19 digits.
        (b'[{"n": 1234567890123456789, "a": NaN}]', "not valid JSON"),
        (b'[{"n": 1234567890123456789, "a": "\x01"}]', "not valid JSON"),
        (b'[{"n": 1234567890123456789, "a": "\xff"}]', "(?i)utf-8"),
        (b'[{"n": 1234567890123456789, "b": 1, "b": 2}]', "duplicate key 'b'"),
        (b'[{"n": 1234567890123456789},', "not valid JSON"),
    ],
)
def test_the_streaming_parser_refuses_what_the_whole_file_parser_refuses(
    raw: bytes, reason: str
) -> None:
    with pytest.raises(ParseError):
        parse_json(raw)
    with pytest.raises(ParseError, match=reason):
        streamed(raw)


def test_the_streaming_parser_keeps_what_the_c_backend_would_change() -> None:
    # A lone surrogate would come out as "?" and a 20-digit integer be refused by the C backend.
    raw = b'\xef\xbb\xbf [{"a": "\\ud800", "b": 100000000000000000000, "c": "\\ud83d\\ude00"}]'
    assert streamed(raw) == [parse_json(raw)[0]]
    assert streamed(raw)[0]["a"] == "\ud800"


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"a": 1}', "one object this large is not read as a work order"),
        (b'{"value": [{"a": 1}', "looks like an envelope: set records = 'value'"),
        (b'\xef\xbb\xbf {"d": {"results": [{', "looks like an envelope: set records = 'd.results'"),
        (b"42", "got a number"),
        (b'"' + b"x" * 100, "got a string"),
        (b"null", "got null"),
    ],
)
def test_a_document_that_is_not_an_array_is_said_at_once(raw: bytes, said: str) -> None:
    """From its first bytes, without reading the rest (the records' shape is not there)."""
    with pytest.raises(NotAnArray, match=re.escape(said)):
        array_items(io.BytesIO(raw))


@pytest.mark.parametrize(("raw", "said"), [(b"", "file is empty"), (b"  \n", "file is empty")])
def test_an_empty_or_broken_start_is_a_parse_error(raw: bytes, said: str) -> None:
    with pytest.raises(ParseError, match=said):
        array_items(io.BytesIO(raw))
    with pytest.raises(ParseError, match="not valid JSON"):
        array_items(io.BytesIO(b"<xml/>"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(json_values, max_size=5), bom=st.booleans(), indent=st.booleans())
def test_streamed_items_are_those_the_whole_file_parser_reads(
    items: list[Any], bom: bool, indent: bool
) -> None:
    text = json.dumps(items, indent=2 if indent else None, ensure_ascii=False)
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")
    try:
        expected = parse_json(raw)
    except ParseError:
        with pytest.raises(ParseError):
            streamed(raw)
        return
    assert streamed(raw) == expected


def test_a_copy_across_file_systems_keeps_a_source_written_to_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer adds to the file while it is copied to another file system: the copy is removed
    and the source, with every byte written, stays."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source, target = tmp_path / "a" / "1.json", tmp_path / "b" / "1.json"
    source.write_bytes(b"[1,")
    real_fsync_dir = temps.fsync_dir

    def writer_goes_on(path: Path) -> None:  # after the copy is in place, before the unlink
        with open(source, "ab") as writer:
            writer.write(b"2]")
        real_fsync_dir(path)

    monkeypatch.setattr(moves, "fsync_dir", writer_goes_on)
    with pytest.raises(moves.SourceChanged):
        moves._copy_across(source, target)
    assert source.read_bytes() == b"[1,2]"
    assert not target.exists()


def test_an_unchanged_source_is_copied_then_removed(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    source, target = tmp_path / "a" / "1.json", tmp_path / "b" / "1.json"
    source.write_bytes(b"[1]")
    assert moves._copy_across(source, target)
    assert target.read_bytes() == b"[1]" and not source.exists()


@contextlib.asynccontextmanager
async def folder_source(folder: Path, **settings: Any) -> Any:
    source = FolderSource(FolderSettings(data_inbound_dir=folder, **settings), builtin_mapping())
    await source.prepare()
    try:
        yield source
    finally:
        await source.close()


def append(path: Path, data: bytes) -> None:
    """A writer that still holds the file writes more."""
    with open(path, "ab") as writer:
        writer.write(data)


async def test_a_file_written_to_after_it_was_taken_goes_back(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    write_json(inbound / "1.json", client_record(1))
    async with folder_source(inbound) as source:
        units = [u async for batch in source.batches(100) for u in batch]
        assert [u.name for u in units] == ["1.json"]
        append(units[0].handle.path, b"\n")  # type: ignore[attr-defined]
        with structlog.testing.capture_logs() as logs:
            await source.complete(units)
    assert (inbound / "1.json").exists()
    assert not (inbound / "processed" / "1.json").exists()
    assert [e["file"] for e in logs if e["event"] == "inbound.file_changed_in_hand"] == ["1.json"]


async def test_a_large_file_comes_in_parts_and_is_archived_after_the_last(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    inbound.mkdir()
    records = [client_record(n) for n in range(1, 30_001)]
    (inbound / "big.json").write_bytes(orjson.dumps(records))
    assert (inbound / "big.json").stat().st_size > 4 * 1024 * 1024
    os.utime(inbound / "big.json", (1, 1))  # its writer is long done
    async with folder_source(inbound) as source:
        sizes = []
        async for batch in source.batches(10_000):
            assert len(batch) == 1
            sizes.append((len(batch[0].records), batch[0].ends_input))
            await source.complete(batch)
            assert (inbound / "processed" / "big.json").exists() == batch[0].ends_input
    assert sizes == [(10_000, False), (10_000, False), (10_000, False), (0, True)]


async def test_watch_takes_a_large_file_in_parts_one_per_batch(tmp_path: Path) -> None:
    inbound = tmp_path / "in"
    inbound.mkdir()
    (inbound / "big.json").write_bytes(orjson.dumps([client_record(n) for n in range(1, 25_001)]))
    write_json(inbound / "small.json", client_record(99_999))
    os.utime(inbound / "big.json", (1, 1))  # the oldest: taken first
    async with folder_source(inbound) as source:
        taken = []
        async with contextlib.aclosing(source.following(10_000, 30)) as batches:
            async for batch in batches:
                taken.append([(u.name, len(u.records), u.ends_input) for u in batch])
                await source.complete(batch)
    # The last part leaves room for what follows.
    assert taken == [
        [("big.json", 10_000, False)],
        [("big.json", 10_000, False)],
        [("big.json", 5_000, True), ("small.json", 1, True)],
    ]
    assert sorted(p.name for p in (inbound / "processed").iterdir()) == ["big.json", "small.json"]


async def test_a_suspect_is_taken_alone_in_its_own_batch(tmp_path: Path) -> None:
    """In hand when an instance died: if it kills the next one too, it is the only file in
    hand then, and no neighbour is suspected with it."""
    inbound = tmp_path / "in"
    for age, number in enumerate((1, 2, 3)):
        write_json(inbound / f"{number}.json", client_record(number))
        os.utime(inbound / f"{number}.json", (100 + age, 100 + age))
    async with folder_source(inbound) as source:
        source._claims.suspects.put("2.json", {"identity": [0, 0]})
        for following in (False, True):
            taking = source.following(100, 30) if following else source.batches(100)
            taken = []
            async with contextlib.aclosing(taking) as batches:
                async for batch in batches:
                    taken.append([u.name for u in batch])
                    await source.release(batch)
                    if len(taken) == 3:
                        break
            # (Following, what was given back is looked at again: 1.json may come back.)
            assert taken[:2] == [["1.json"], ["2.json"]], following
            assert taken[2][0] == "3.json", following


async def test_a_recent_large_file_is_not_read_until_it_settles(tmp_path: Path) -> None:
    """A large file is streamed (its records applied before its end is read): just written, it
    is left alone, whole or not, and never rejected meanwhile."""
    inbound = tmp_path / "in"
    inbound.mkdir()
    (inbound / "big.json").write_bytes(orjson.dumps([client_record(n) for n in range(1, 25_001)]))
    async with folder_source(inbound, inbound_settle_seconds=60) as source:
        assert [batch async for batch in source.batches(10_000)] == []
    assert (inbound / "big.json").exists()
    assert not (inbound / "rejected").exists() or not list((inbound / "rejected").iterdir())


def overwrite(path: Path, at: int, data: bytes) -> None:
    """A writer at it in place (the next part is already read ahead: write past it)."""
    with open(path, "r+b") as writer:
        writer.seek(at)
        writer.write(data)


async def taking_settled() -> None:
    """Whatever the source started taking meanwhile has run: the read-ahead (a worker thread;
    the test's executor has one, so a no-op queued behind it waits for it) and the gathering (on
    the loop, claiming small files without suspending)."""
    await asyncio.get_running_loop().run_in_executor(None, lambda: None)
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.mark.parametrize("following", [False, True])
async def test_a_suspect_is_claimed_only_with_nothing_else_in_hand_and_nothing_beside_it(
    tmp_path: Path, following: bool
) -> None:
    """Not claimed while the batch before it is out (applied or archived), and nothing is read
    ahead while it is out: if it kills this instance too, it alone is blamed."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
    inbound = tmp_path / "in"
    for age, number in enumerate((1, 2, 3)):
        write_json(inbound / f"{number}.json", client_record(number))
        os.utime(inbound / f"{number}.json", (100 + age, 100 + age))
    async with folder_source(inbound) as source:
        source._claims.suspects.put("2.json", {"identity": [0, 0]})
        source._claimer.load_suspects()
        taking = source.following(100, 30) if following else source.batches(100)
        in_hand = []
        async with contextlib.aclosing(taking) as batches:
            async for batch in batches:
                await taking_settled()
                claimed = sorted(p.name for p in source._claims.path.iterdir())
                in_hand.append(([u.name for u in batch], claimed))
                await source.complete(batch)
                if len(in_hand) == 3:
                    break
    assert in_hand == [
        (["1.json"], ["1.json"]),  # the suspect waits for 1.json to be back
        (["2.json"], ["2.json"]),  # nothing read ahead beside it
        (["3.json"], ["3.json"]),
    ]


async def test_a_large_file_rewritten_while_streamed_goes_back_not_to_rejected(
    tmp_path: Path,
) -> None:
    """Settled when taken, then its writer is at it again (in place) while its parts are read:
    the part that no longer parses sends it back, not to rejected/."""
    inbound = tmp_path / "in"
    inbound.mkdir()
    raw = orjson.dumps([client_record(n) for n in range(1, 25_001)])
    path = inbound / "big.json"
    path.write_bytes(raw)
    os.utime(path, (1, 1))
    ends = []
    async with folder_source(inbound, inbound_settle_seconds=60) as source:
        async for batch in source.batches(10_000):
            ends += [u.ends_input for u in batch]
            if len(ends) == 1:  # the writer rewrites the rest, not JSON yet
                in_hand = next((inbound / ".claims").rglob("big.json"))
                overwrite(in_hand, len(raw) - 2000, b"\x00")  # in the last part
            await source.complete(batch)
    assert ends[-1] is False
    assert path.exists()
    assert not (inbound / "rejected").exists() or not list((inbound / "rejected").iterdir())


async def test_a_large_file_given_back_mid_way_goes_back_whole(tmp_path: Path) -> None:
    """The consumer fails on a part (TracOS down): the file goes back, while the read-ahead may
    be decoding its next part."""
    inbound = tmp_path / "in"
    inbound.mkdir()
    raw = orjson.dumps([client_record(n) for n in range(1, 25_001)])
    (inbound / "big.json").write_bytes(raw)
    async with folder_source(inbound) as source:
        batches = source.batches(5_000)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                await source.release(batch)  # as the pipeline does when applying fails
                break
        assert not source.has_open_parts()
    assert (inbound / "big.json").read_bytes() == raw
    assert not left_in_claims(inbound)


def test_warnings_are_kept_per_folder(tmp_path: Path) -> None:
    """Two integrations' ``1.json``: a warning about one does not silence the other."""
    with structlog.testing.capture_logs() as logged:
        said_in(tmp_path / "a").warn("inbound.file_left", "1.json", "cannot be read")
        said_in(tmp_path / "b").warn("inbound.file_left", "1.json", "cannot be read")
        said_in(tmp_path / "a").warn("inbound.file_left", "1.json", "cannot be read")
    # Repeats go to DEBUG, which a logging configuration made earlier in the suite may filter:
    # count the warnings only (one per folder; the repeat is not one).
    assert [e["log_level"] for e in logged if e["log_level"] != "debug"] == ["warning", "warning"]
    assert isinstance(said_in(tmp_path / "a"), Repeats)


@pytest.mark.parametrize(
    ("remove", "said"),
    [
        ("inbound", "inbound folder"),
        ("claims", "claims folder"),
        ("own", "removed by another instance as stale"),
    ],
)
def test_a_vanished_claim_folder_is_said_for_what_happened(
    tmp_path: Path, remove: str, said: str
) -> None:
    inbound = tmp_path / "in"
    inbound.mkdir()
    claims = ClaimFolder(inbound, 3600)
    claims.open()
    try:
        gone = {"inbound": inbound, "claims": claims.root, "own": claims.path}[remove]
        for folder in sorted(gone.rglob("*"), reverse=True):
            folder.rmdir() if folder.is_dir() else folder.unlink()
        gone.rmdir()
        with structlog.testing.capture_logs() as logged:
            claims.ensure()
        (line,) = [e for e in logged if e["event"] == "inbound.claim_folder_vanished"]
        assert said in line["reason"]
        assert os.path.isdir(claims.path)
    finally:
        claims.close()


def test_a_file_written_while_the_folder_is_listed_is_not_dated_ahead(tmp_path: Path) -> None:
    """Under a steady flow a file lands while the folder is being listed, a hair after the
    listing's "now": it is not dated ahead of this host (that was said hundreds of times a
    minute); one dated seconds ahead is."""
    inbound = tmp_path / "in"
    now = time.time()
    for name, ahead in (("landing.json", 0.5), ("copied.json", 30)):
        write_json(inbound / name, client_record(1))
        os.utime(inbound / name, (now + ahead, now + ahead))
    with structlog.testing.capture_logs() as logged:
        listed = list_waiting(FolderSettings(data_inbound_dir=inbound))
    assert {w.name: w.ahead for w in listed} == {"landing.json": False, "copied.json": True}
    said = [e["file"] for e in logged if e["event"] == "inbound.file_dated_ahead"]
    assert said == ["copied.json"]


def dead_instance(inbound: Path, *names: str) -> None:
    """A claim folder of an instance of this host that died holding ``names``."""
    host = socket.gethostname().replace("-", "_")
    folder = inbound / ".claims" / f"{host}-999999-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    for name in names:
        os.rename(inbound / name, folder / name)


def recover(inbound: Path) -> list[str]:
    """An instance starts (recovering the dead ones) and stops; what it quarantined."""
    claims = ClaimFolder(inbound, 3600)
    claims.open()
    claims.close()
    return [q.name for q in claims.quarantined]


def test_a_crash_with_nothing_of_a_suspect_in_hand_clears_it(tmp_path: Path) -> None:
    """Poison is a file in hand at two *consecutive* crashes: one in hand (among many) at a
    crash, then a crash that held nothing of it, then in hand again is put back and noted
    again, not quarantined; in hand at the very next crash too, it is (hostile finding: five
    ordinary files quarantined in twelve random kills)."""
    inbound = tmp_path / "in"
    for name in ("s.json", "t.json"):
        write_json(inbound / name, client_record(1))
    (inbound / "rejected").mkdir()
    dead_instance(inbound, "s.json", "t.json")
    assert recover(inbound) == []  # crash 1: both noted
    dead_instance(inbound)
    assert recover(inbound) == []  # crash 2: nothing in hand
    dead_instance(inbound, "s.json")
    assert recover(inbound) == []  # crash 3: not consecutive with crash 1
    assert (inbound / "s.json").exists()
    dead_instance(inbound, "s.json")
    assert recover(inbound) == ["s.json"]  # crash 4: in hand at 3 and 4
    assert (inbound / "rejected" / "s.json").exists()
