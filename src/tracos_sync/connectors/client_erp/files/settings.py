"""Settings of the JSON-folder transport."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from tracos_sync.config import EnvSettings, TimeZoneName
from tracos_sync.folders import folder_overlap

# processed/ and rejected/ directly under inbound (the defaults) may nest, as inbound reads no
# subfolder.
ARCHIVES_IN_INBOUND = (
    ("DATA_PROCESSED_DIR", "DATA_INBOUND_DIR"),
    ("DATA_REJECTED_DIR", "DATA_INBOUND_DIR"),
)


class FileRules(EnvSettings):
    """What every folder transport (local or SFTP) reads its files by."""

    client_timezone: TimeZoneName = "UTC"
    """IANA zone in which naive client timestamps are read."""
    max_file_bytes: int = Field(64 * 1024 * 1024, ge=1)
    """Larger inbound files are rejected without being read (default 64 MiB)."""
    inbound_min_age_seconds: float = Field(0.0, ge=0, le=7 * 86_400)
    """Files younger than this are left for the next run (a writer may still be writing them)."""
    claim_stale_seconds: float = Field(3600.0, ge=1, le=30 * 86_400)
    """A claim folder of another host untouched this long is taken back (at least a second: a
    claim's liveness is refreshed every quarter of it)."""
    inbound_settle_seconds: float = Field(2.0, ge=0, le=86_400)
    """A file that does not parse and changed this recently (or is dated ahead of this host) may
    still be being written: it is read in place and left for later, not rejected; a large array is
    taken only once unchanged this long."""


class FolderSettings(FileRules):
    """Settings of the JSON-folder transport."""

    data_inbound_dir: Path = Path("data/inbound")
    """Client work-order files to read (relative to the working directory; created if missing,
    with a `folder.created` warning)."""
    data_outbound_dir: Path = Path("data/outbound")
    """Where TracOS work orders are written (relative to the working directory; created if
    missing, with a `folder.created` warning)."""
    data_processed_dir: Path | None = None
    """Archive of applied files (relative to the working directory). Unset:
    `<inbound>/processed`, created quietly."""
    data_rejected_dir: Path | None = None
    """Quarantine, each file beside its `<name>.error.json` (relative to the working directory).
    Unset: `<inbound>/rejected`, created quietly."""

    @model_validator(mode="after")
    def _default_archives(self) -> FolderSettings:
        if self.data_processed_dir is None:
            self.data_processed_dir = self.data_inbound_dir / "processed"
        if self.data_rejected_dir is None:
            self.data_rejected_dir = self.data_inbound_dir / "rejected"
        overlap = folder_overlap(self.folders(), ARCHIVES_IN_INBOUND)
        if overlap is not None:
            raise ValueError(overlap)
        return self

    def folders(self) -> dict[str, Path]:
        """Every folder, by setting name."""
        return {
            "DATA_INBOUND_DIR": self.data_inbound_dir,
            "DATA_PROCESSED_DIR": self.processed_dir,
            "DATA_REJECTED_DIR": self.rejected_dir,
            "DATA_OUTBOUND_DIR": self.data_outbound_dir,
        }

    @property
    def processed_dir(self) -> Path:
        assert self.data_processed_dir is not None
        return self.data_processed_dir

    @property
    def rejected_dir(self) -> Path:
        assert self.data_rejected_dir is not None
        return self.data_rejected_dir
