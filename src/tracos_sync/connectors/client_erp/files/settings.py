"""Settings of the JSON-folder transport."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from tracos_sync.config import EnvSettings, TimeZoneName


class FolderSettings(EnvSettings):
    """Settings of the JSON-folder transport."""

    data_inbound_dir: Path = Path("data/inbound")
    data_outbound_dir: Path = Path("data/outbound")
    data_processed_dir: Path | None = None
    data_rejected_dir: Path | None = None
    client_timezone: TimeZoneName = "UTC"
    max_file_bytes: int = Field(64 * 1024 * 1024, ge=1)
    inbound_min_age_seconds: float = Field(0.0, ge=0, le=7 * 86_400)
    # At least a second: a claim's liveness is refreshed every quarter of it.
    claim_stale_seconds: float = Field(3600.0, ge=1, le=30 * 86_400)

    @model_validator(mode="after")
    def _default_archives(self) -> FolderSettings:
        if self.data_processed_dir is None:
            self.data_processed_dir = self.data_inbound_dir / "processed"
        if self.data_rejected_dir is None:
            self.data_rejected_dir = self.data_inbound_dir / "rejected"
        overlap = folder_overlap(
            {
                "DATA_INBOUND_DIR": self.data_inbound_dir,
                "DATA_PROCESSED_DIR": self.data_processed_dir,
                "DATA_REJECTED_DIR": self.data_rejected_dir,
                "DATA_OUTBOUND_DIR": self.data_outbound_dir,
            }
        )
        if overlap is not None:
            raise ValueError(overlap)
        return self

    @property
    def processed_dir(self) -> Path:
        assert self.data_processed_dir is not None
        return self.data_processed_dir

    @property
    def rejected_dir(self) -> Path:
        assert self.data_rejected_dir is not None
        return self.data_rejected_dir


def folder_overlap(folders: dict[str, Path]) -> str | None:
    """Why these folders cannot be used together, or None. Each must be its own: an export
    written into the inbound folder would be read back as a client file, an archive that is the
    outbound folder would be overwritten by the next export. Only processed/ and rejected/
    directly under inbound (the defaults) may nest, as inbound reads no subfolder."""
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
                nested_archive = outer == "DATA_INBOUND_DIR" and inner in (
                    "DATA_PROCESSED_DIR",
                    "DATA_REJECTED_DIR",
                )
                if nested_archive and depth == 1:
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
