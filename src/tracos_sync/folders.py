"""Folders that must each be their own: the same folder twice, or one inside another, found
through symlinks, ``..`` and bind mounts."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path


def folder_overlap(
    folders: Mapping[str, Path], may_nest: Collection[tuple[str, str]] = ()
) -> str | None:
    """Why these folders cannot be used together, or None. Each must be its own: an export
    written into the inbound folder would be read back as a client file, an archive that is the
    outbound folder would be overwritten by the next export. Only the (inner, outer) pairs of
    ``may_nest`` may nest, and only one level deep."""
    # Resolved as far as they exist, so that a symlink or ".." cannot hide a match; and the
    # folders that exist compared by identity, so that a bind mount cannot either.
    real = {name: Path(os.path.abspath(path)).resolve() for name, path in folders.items()}
    names = list(real)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if _same(real[a], real[b]):
                return f"{a} and {b} are the same folder ({real[a]}); each must be its own"
            for inner, outer in ((a, b), (b, a)):
                depth = _inside(real[inner], real[outer])
                if depth is None:
                    continue
                if (inner, outer) in may_nest and depth == 1:
                    continue
                return (
                    f"{inner} ({real[inner]}) lies inside {outer} ({real[outer]}); "
                    "they must not nest"
                )
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    ida = _identity(a)
    return ida is not None and ida == _identity(b)


def _inside(inner: Path, outer: Path) -> int | None:
    """How many levels ``inner`` lies below ``outer`` (by path or by identity), or None."""
    if inner.is_relative_to(outer) and inner != outer:
        return len(inner.relative_to(outer).parts)
    target = _identity(outer)
    if target is None:
        return None
    for depth, parent in enumerate(inner.parents, start=1):
        if _identity(parent) == target:
            return depth
    return None
