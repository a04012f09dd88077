"""Settings of the JSON-folder transport."""

from __future__ import annotations

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
    inbound_min_age_seconds: float = Field(0.0, ge=0)
    claim_stale_seconds: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _default_archives(self) -> FolderSettings:
        if self.data_processed_dir is None:
            self.data_processed_dir = self.data_inbound_dir / "processed"
        if self.data_rejected_dir is None:
            self.data_rejected_dir = self.data_inbound_dir / "rejected"
        return self

    @property
    def processed_dir(self) -> Path:
        assert self.data_processed_dir is not None
        return self.data_processed_dir

    @property
    def rejected_dir(self) -> Path:
        assert self.data_rejected_dir is not None
        return self.data_rejected_dir
