"""One readable line for any failure, as logs, reports and health lines show it."""

from __future__ import annotations

from tracos_sync.domain.errors import SyncError
from tracos_sync.tracos.retry import describe


def describe_error(exc: BaseException) -> str:
    """One readable line for any failure: our own errors with their cause, others typed."""
    if isinstance(exc, SyncError):
        message = str(exc)
        if exc.__cause__ is not None and describe(exc.__cause__) not in message:
            message += f" ({describe(exc.__cause__)})"
        return message
    return f"{type(exc).__name__}: {describe(exc)}"
