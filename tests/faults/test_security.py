"""Writes never follow links out of the configured folders; temp files are private."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.builders import tracos_doc
from tests.conftest import Env
from tracos_sync.connectors.client_erp.files import durable, moves, temps


def test_outbound_replaces_a_planted_symlink_instead_of_following_it(env: Env) -> None:
    target = env.root / "precious.txt"
    target.write_text("do not touch")
    env.outbound.mkdir(parents=True)
    (env.outbound / "1.json").symlink_to(target)
    env.collection.insert_one(tracos_doc(1))
    result = env.cli("outbound")
    assert result.code == 0, result.output
    assert target.read_text() == "do not touch"
    assert not (env.outbound / "1.json").is_symlink()
    assert stat.S_IMODE((env.outbound / "1.json").stat().st_mode) == 0o644


def test_temp_files_are_private_until_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []
    renamed: list[int] = []
    real_mkstemp, real_replace = temps.tempfile.mkstemp, os.replace

    def mkstemp_spy(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, path = real_mkstemp(*args, **kwargs)
        created.append(stat.S_IMODE(os.stat(path).st_mode))
        return fd, path

    def replace_spy(src: Any, dst: Any) -> None:
        renamed.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(temps.tempfile, "mkstemp", mkstemp_spy)
    monkeypatch.setattr(durable.os, "replace", replace_spy)
    durable.write_atomically(tmp_path / "5.json", b"{}")
    assert created == [0o600], "readable by its owner only while being written"
    assert renamed == [0o644], "readable, never world-writable, once complete"


def test_archive_never_overwrites_or_follows_links(tmp_path: Path) -> None:
    src_dir, dst_dir = tmp_path / "a", tmp_path / "b"
    src_dir.mkdir()
    dst_dir.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text("outside")
    (dst_dir / "9.json").symlink_to(outside)
    (src_dir / "9.json").write_text("new")
    moved = moves.move_no_clobber(src_dir / "9.json", dst_dir, "9.json")
    assert moved.name == "9~1.json"
    assert moved.read_text() == "new"
    assert outside.read_text() == "outside"
