"""Folders made unwritable for root too (chmod does not stop root): read-only bind mounts; and
folders of a test's own on another file system (tmpfs at /dev/shm)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

SHM = Path("/dev/shm")  # tmpfs on Linux: another file system, and fsync costs nothing there


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


@contextlib.contextmanager
def folder_in(parent: Path, prefix: str) -> Iterator[Path]:
    """A new folder of its own in ``parent``, removed with all it holds at the end."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
