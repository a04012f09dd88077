"""Retrying the ERP's API: what is worth retrying, and how long to wait (``Retry-After``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from tenacity import RetryCallState, wait_random_exponential

from tracos_sync.domain.errors import TransientError


class ApiTransient(TransientError):
    """Worth retrying (429, 5xx, network, too slow); carries the server's ``Retry-After``."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (delay or HTTP date), ``None`` when absent or unreadable
    (also ``nan`` and ``inf``)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan", "inf": as unreadable as any other word
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class WaitHonouringRetryAfter:
    """Exponential backoff with jitter, but never sooner than the server's ``Retry-After``."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=0.2, max=10)

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ApiTransient) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait
