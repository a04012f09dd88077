"""File names that fit: the longest name a folder accepts, a deterministic shorter one, and the
free variants (``42~1.json``) for placing a file beside an earlier one of the same name."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


@functools.lru_cache(maxsize=64)
def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that ``folder``'s file system accepts."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def fit_name(name: str, limit: int) -> str:
    """``name`` if it is at most ``limit`` bytes, else a deterministic shorter one: its start, a
    hash of the whole name and its extension (``<start>~h<hash>.json``)."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    ext = b".json" if raw.endswith(b".json") else b""
    digest = b"~h" + hashlib.sha256(raw).hexdigest()[:12].encode()
    keep = max(limit - len(digest) - len(ext), 1)
    return os.fsdecode(raw[:keep] + digest + ext)


def free_names(name: str) -> Iterable[str]:
    """``42.json``, then ``42~1.json``, ``42~2.json``, … for archiving beside an earlier one."""
    yield name
    stem, dot, suffix = name.partition(".")
    n = 1
    while True:
        yield f"{stem}~{n}{dot}{suffix}"
        n += 1


def candidate_names(name: str, folder: Path, reserve: int = 0) -> Iterable[str]:
    """:func:`free_names`, each shortened so that ``reserve`` more bytes still fit in a name."""
    limit = name_max(folder) - reserve
    for candidate in free_names(name):
        yield fit_name(candidate, limit)
