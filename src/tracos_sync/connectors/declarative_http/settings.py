"""Settings of the ``api`` connector beside its API description: how long a request may take,
how long failures are retried, how large an answer may be, and the zone of naive client times.

In an integration's settings table, the description's keys (``base_url``, ``auth``, ``read``,
``write``) are the description; every other key is one of these (named as its variable, in any
case)."""

from __future__ import annotations

from pydantic import Field

from tracos_sync.config import EnvSettings, TimeZoneName


class ApiSettings(EnvSettings):
    client_api_timeout_seconds: float = Field(10.0, gt=0, le=3_600)
    """Deadline of one whole request to the API, from sending it to the last byte of the answer
    (not per read)."""
    client_api_retry_seconds: float = Field(30.0, ge=0, le=86_400)
    """Retry budget for 408/425/429/5xx, network errors and answers past the deadline; never
    sooner than `Retry-After`, and a `Retry-After` beyond the budget gives up at once (an
    unreadable one — a word, `nan`, `inf` — counts as absent)."""
    client_api_max_response_bytes: int = Field(64 * 1024 * 1024, ge=1_024)
    """A larger answer fails the run's inbound, exit 1 (default 64 MiB)."""
    client_timezone: TimeZoneName = "UTC"
    """IANA zone in which naive client timestamps are read (unless the mapping names its own)."""
