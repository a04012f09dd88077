"""Exit codes, in one place: 0 the run completed (rejected inputs are reported, not failures);
1 it could not complete (what was done is kept); 2 bad configuration or usage."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import structlog

from tracos_sync.domain.errors import ConfigurationError, SyncError
from tracos_sync.runs import describe_error

log = structlog.get_logger("tracos_sync")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
T = TypeVar("T")


def exit_code(error: BaseException | None) -> int:
    """The exit-code policy, in one place; logs the failure once."""
    if error is None:
        return EXIT_OK
    if isinstance(error, ConfigurationError):
        log.error("config.invalid", error=str(error))
        return EXIT_CONFIG
    event = "run.failed" if isinstance(error, SyncError) else "run.crashed"
    log.error(event, error=describe_error(error), exc_info=error)
    return EXIT_FAILED


async def caught(work: Awaitable[T]) -> tuple[T | None, Exception | None]:
    try:
        return await work, None
    except Exception as exc:
        return None, exc
