"""Archiving inbound files: applied ones to processed/, bad ones to rejected/ beside their reason.

A reason file is ``<archived name>.error.json`` (``42.json`` → ``42.json.error.json``). It is
written *before* its file is moved beside it, complete and without replacing anything, so that a
rejected file never exists without its reason, whatever instant a crash hits (a crash between the
two leaves the file claimed, put back and rejected again later, and a reason without its file).
A client file whose own name ends in ``.error.json`` is archived in rejected/ as
``….error-client.json``: there, every ``*.error.json`` is a reason and every other ``*.json`` is a
client file, so a reason can never overwrite or hide a client file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.model import Problem
from tracos_sync.domain.text import printable

from .durable import create_exclusively
from .fsnames import candidate_names
from .moves import already_there, place_no_clobber
from .temps import write_all

SIDECAR_SUFFIX = ".error.json"
CLIENT_LOOKALIKE_SUFFIX = ".error-client.json"


def rejected_name(name: str) -> str:
    """The name a rejected client file is archived under (before any ``~N``)."""
    if name.endswith(SIDECAR_SUFFIX):
        return name[: -len(SIDECAR_SUFFIX)] + CLIENT_LOOKALIKE_SUFFIX
    return name


def reject(claimed: Path, rejected: Path, name: str, problems: Sequence[Problem]) -> Path:
    """Move ``claimed`` into ``rejected`` beside a reason listing ``problems``; never overwrites.
    Returns where the file now is."""
    for candidate in candidate_names(rejected_name(name), rejected, len(SIDECAR_SUFFIX)):
        target = rejected / candidate
        if already_there(claimed, target):  # a killed run got this far: its reason came first
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claimed)
            return target
        reason = rejected / (candidate + SIDECAR_SUFFIX)
        report: dict[str, object] = {
            "file": printable(name),
            "archivedAs": printable(candidate),
            "rejectedAt": format_instant(datetime.now(UTC)),
            "problems": [p.as_dict() for p in problems],
        }
        if report["file"] != name:  # not valid UTF-8: its exact bytes, for replay
            report["fileBytesHex"] = os.fsencode(name).hex()
        try:
            create_exclusively(reason, orjson.dumps(report, option=orjson.OPT_INDENT_2))
        except FileExistsError:
            continue  # that name's reason is taken: so is the name
        try:
            if place_no_clobber(claimed, target):
                return target
        except BaseException:
            reason.unlink()
            raise
        reason.unlink()
    raise AssertionError("unreachable")  # pragma: no cover


def is_reason(name: str, names: set[str]) -> bool:
    """Whether ``name`` in a rejected/ folder holding ``names`` is a reason file. An older version
    kept client files named ``*.error.json`` as they were; those have a reason of their own."""
    return name.endswith(SIDECAR_SUFFIX) and name + SIDECAR_SUFFIX not in names


def rejected_files(rejected: Path) -> tuple[list[str], list[str]]:
    """The quarantined client files in ``rejected``, and the reasons whose file is not there (a
    crash between writing a reason and moving its file; harmless)."""
    try:
        names = {
            entry.name
            for entry in os.scandir(rejected)
            if entry.name.endswith(".json") and not entry.name.startswith(".")
        }
    except FileNotFoundError:
        return [], []
    files = sorted(n for n in names if not is_reason(n, names))
    orphans = sorted(
        n for n in names if is_reason(n, names) and n[: -len(SIDECAR_SUFFIX)] not in names
    )
    return files, orphans


# Errors that say the whole folder (its file system) refuses writes, not one file.
FOLDER_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})


def folder_refuses(folder: Path, error: OSError) -> bool:
    """Whether ``error`` from archiving into ``folder`` is the folder's (nothing can be written
    there) rather than one file's. Asked only after a failure: it writes a probe file."""
    if error.errno in FOLDER_ERRORS:
        return True
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".tracos-probe.", suffix=".tmp")
    except OSError:
        return True
    try:
        write_all(fd, b"x")
    except OSError:
        return True
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return False
