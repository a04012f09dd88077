"""Folders that must each be their own: the same folder twice, or one inside another, found
through symlinks, ``..`` and bind mounts."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path


def folder_overlap(
    folders: Mapping[str, Path],
    may_nest: Collection[tuple[str, str]] = (),
    groups: Mapping[str, str] | None = None,
) -> str | None:
    """Why these folders cannot be used together, or None. Each must be its own: an export
    written into the inbound folder would be read back as a client file, an archive that is the
    outbound folder would be overwritten by the next export. Only the (inner, outer) pairs of
    ``may_nest`` may nest, and only one level deep. Folders of one group (``groups``: name ->
    group) are not compared with each other (their owner did that).

    Each folder is looked up by path and by identity along its own parents, so the cost grows
    with the number of folders, not with its square (hundreds of integrations start at once)."""
    # Resolved as far as they exist, so that a symlink or ".." cannot hide a match; and the
    # folders that exist compared by identity, so that a bind mount cannot either.
    real = {name: Path(os.path.abspath(path)).resolve() for name, path in folders.items()}

    def apart(a: str, b: str) -> bool:
        return groups is None or groups.get(a) != groups.get(b)

    by_key: dict[object, str] = {}
    for name, path in real.items():
        for key in (path, _identity(path)):
            if key is None:
                continue
            other = by_key.setdefault(key, name)
            if other != name and apart(other, name):
                return f"{other} and {name} are the same folder ({path}); each must be its own"
    for name, path in real.items():
        for depth, parent in enumerate(path.parents, start=1):
            for key in (parent, _identity(parent)):
                outer = by_key.get(key) if key is not None else None
                if outer is None or outer == name or not apart(outer, name):
                    continue
                if (name, outer) in may_nest and depth == 1:
                    continue
                return f"{name} ({path}) lies inside {outer} ({real[outer]}); they must not nest"
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
