"""Folders made unwritable for root too (chmod does not stop root): read-only bind mounts."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """The folder made unwritable, for root too (chmod does not stop root): a read-only bind
    mount over it."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def can_mount(root: Path) -> bool:
    probe = root / "mount-probe"
    try:
        with read_only(probe):
            return True
    except (subprocess.CalledProcessError, OSError):
        return False
