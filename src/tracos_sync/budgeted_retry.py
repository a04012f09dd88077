"""The one retry loop of the service: an operation retried while its failure is transient, with
the caller's wait between attempts, until a time budget is spent (then its last failure is
raised). The database (``tracos.retry``) and the ERP's API (``declarative_http.requester``) both
use it; each classifies its own failures and says how to wait."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_before_delay,
)

T = TypeVar("T")


async def retry_within(
    operation: Callable[[], Awaitable[T]],
    *,
    budget_seconds: float,
    transient: Callable[[BaseException], bool],
    wait: Callable[[RetryCallState], float],
    before_sleep: Callable[[RetryCallState], None],
    sleep_past_budget: bool = True,
) -> T:
    """``sleep_past_budget`` False: never start a wait that would end after the budget (an API
    asking for a long ``Retry-After`` is given up at once rather than waited for)."""
    stop = stop_after_delay if sleep_past_budget else stop_before_delay
    retrying = AsyncRetrying(
        stop=stop(budget_seconds),
        wait=wait,
        retry=retry_if_exception(transient),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:  # a coroutine function, so that tenacity awaits it
        return await operation()

    return await retrying(attempt)
