"""Creating the connector's folders: a configured folder that was not there is created and said
aloud (``folder.created``), with its absolute path and, for a relative setting, the working
directory it was taken from. Run from the wrong directory, the service would otherwise read from
and export into new empty folders there, and mark work orders synced, without a word."""

from __future__ import annotations

from pathlib import Path

import structlog

log = structlog.get_logger("tracos_sync.files")


def create_folder(folder: Path, setting: str | None) -> None:
    """``folder`` and its parents, warned about once created when ``setting`` names the
    variable it comes from; ``None`` for a folder of ours (processed/ and rejected/ under the
    inbound folder), created quietly. Raises ``OSError``."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    if setting is None:
        return
    if folder.is_absolute():
        reason = f"{setting} named a folder that did not exist: check it is the one meant"
        where = {}
    else:
        reason = (
            f"{setting}={folder} is relative, taken from the working directory, and named no "
            "folder there: if this is not the project's directory, stop and run from it, "
            "or give an absolute path"
        )
        where = {"working_directory": str(Path.cwd())}
    log.warning(
        "folder.created", setting=setting, path=str(folder.absolute()), **where, reason=reason
    )
