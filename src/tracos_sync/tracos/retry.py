"""Transient vs fatal MongoDB failures, classified once, and retry with backoff inside a budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
)
from tenacity import (
    RetryCallState,
    wait_random_exponential,
)

from tracos_sync.budgeted_retry import retry_within
from tracos_sync.domain.errors import DatabaseUnavailable, FatalError

T = TypeVar("T")
log = structlog.get_logger("tracos_sync.mongo")

# Server error codes that mean "try again": the ones the drivers' retryable-reads/writes
# specifications list, plus WriteConcernFailed.
TRANSIENT_CODES = frozenset(
    {6, 7, 64, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150}
)
DUPLICATE_KEY = 11000
# The server lost a cursor (CursorNotFound: it timed out while the run was descheduled or frozen;
# CursorKilled; QueryPlanKilled): transient for a read that opens its query again, as
# ``pending`` does (the work orders it already handed out are not handed out twice).
LOST_CURSOR_CODES = frozenset({43, 175, 237})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionFailure):  # network errors, not-primary, server selection
        return True
    if isinstance(exc, PyMongoError) and exc.timeout:  # a deadline passed
        return True
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        if details.get("writeConcernErrors"):
            return True
        codes = {err.get("code") for err in details.get("writeErrors", [])}
        return bool(codes) and codes <= TRANSIENT_CODES
    if isinstance(exc, OperationFailure):
        return (
            exc.code in TRANSIENT_CODES
            or exc.code in LOST_CURSOR_CODES
            or exc.has_error_label("RetryableWriteError")
            or exc.has_error_label("TransientTransactionError")
        )
    return False


def describe(exc: BaseException) -> str:
    """One readable line: the server's message and code rather than pymongo's full reply, and
    topology dumps cut off (they hold no secrets, but noise)."""
    if isinstance(exc, BulkWriteError):
        first = (exc.details.get("writeErrors") or [{}])[0]
        text = f"{first.get('errmsg', 'bulk write failed')} (code {first.get('code')})"
    elif isinstance(exc, OperationFailure):
        details = exc.details or {}
        message = details.get("errmsg") or str(exc).split(", full error:")[0]
        name = details.get("codeName")
        text = f"{message} (code {exc.code}{', ' + name if name else ''})"
    else:
        text = str(exc).split(", Timeout:")[0].split(", Topology Description:")[0]
    return text if len(text) <= 300 else text[:299] + "…"


class Retrier:
    """Runs an operation, retrying transient failures with exponential backoff and full jitter
    until ``budget_seconds`` have passed; then raises ``DatabaseUnavailable``. Non-transient
    failures become ``FatalError`` at once. The operation must be idempotent."""

    def __init__(
        self, budget_seconds: float, max_wait: float = 5.0, log_retries: bool = True
    ) -> None:
        """``log_retries`` False: attempts are logged at DEBUG only (watch mode logs the
        database's state changes instead)."""
        self.budget_seconds = budget_seconds
        self._max_wait = max_wait
        self._log_retries = log_retries

    async def call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await retry_within(
                operation,
                budget_seconds=self.budget_seconds,
                transient=is_transient,
                wait=wait_random_exponential(multiplier=0.1, max=self._max_wait),
                before_sleep=self._before_sleep(what, self._log_retries),
            )
        except PyMongoError as exc:
            if is_transient(exc):
                raise DatabaseUnavailable(
                    f"{what}: MongoDB still unavailable after retrying for "
                    f"{self.budget_seconds:g}s: {describe(exc)}"
                ) from exc
            raise FatalError(f"{what} failed: {describe(exc)}") from exc

    @staticmethod
    def _before_sleep(what: str, loud: bool) -> Callable[[RetryCallState], None]:
        def report(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            (log.warning if loud else log.debug)(
                "mongo.retrying",
                operation=what,
                attempt=state.attempt_number,
                wait=round(wait, 2),
                error=describe(exc) if exc else "",
            )

        return report
