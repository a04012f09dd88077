"""How long one integration's watch loop waits after a sweep, beyond ``WATCH_INTERVAL``, for
what its client side said: a sweep a ``WATCH_INTERVAL`` apart is right for an outage, wrong for
an ERP that asked not to be called for an hour, or that refuses our credentials.

- The client asked to wait (``DestinationBusy``: a ``Retry-After`` beyond one run's retry
  budget): no sweep of that integration before then, at most ``MAX_ASKED_WAIT`` (an ERP's
  answer must not silence an integration for a day); logged once per wait.
- Our credentials refused (``DestinationRefusesCredentials``): the wait doubles after each
  refusal in a row, from twice ``WATCH_INTERVAL`` to at most ``MAX_CREDENTIALS_WAIT`` (fixing
  them takes a person; an identity provider may lock a client out that keeps trying); logged
  at the first refusal.
- Anything else, or a sweep that succeeds: ``WATCH_INTERVAL`` again.

Only the integration's own loop waits; the others go on.
"""

from __future__ import annotations

from typing import TypeVar

import structlog

from tracos_sync.domain.errors import DestinationBusy, DestinationRefusesCredentials
from tracos_sync.failures import describe_error

log = structlog.get_logger("tracos_sync.watch")

E = TypeVar("E", bound=BaseException)

MAX_ASKED_WAIT = 3_600.0
MAX_CREDENTIALS_WAIT = 900.0


class ClientBackoff:
    """``after(error)``: seconds until the next sweep of one integration."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self.refusals = 0  # credentials refused, sweeps in a row

    def after(self, error: BaseException | None) -> float:
        busy = _found(error, DestinationBusy)
        refused = _found(error, DestinationRefusesCredentials)
        self.refusals = self.refusals + 1 if refused is not None else 0
        if busy is not None:
            wait = min(max(busy.wait, self._interval), MAX_ASKED_WAIT)
            log.warning(
                "watch.client_wait",
                seconds=round(wait, 3),
                asked=round(busy.wait, 3),
                detail="the client API asks not to be called before then (Retry-After); "
                f"at most {MAX_ASKED_WAIT:g}s is waited",
            )
            return wait
        if refused is not None:
            wait = min(self._interval * 2.0**self.refusals, MAX_CREDENTIALS_WAIT)
            (log.warning if self.refusals == 1 else log.debug)(
                "watch.credentials_backoff",
                seconds=round(wait, 3),
                refusals=self.refusals,
                error=describe_error(refused),
                detail="the client API refuses our credentials: asking again less and less "
                f"often (at most every {MAX_CREDENTIALS_WAIT:g}s) until they are fixed",
            )
            return wait
        return self._interval


def _found(error: BaseException | None, kind: type[E]) -> E | None:
    """``error`` or one of its causes, if of ``kind``."""
    while error is not None:
        if isinstance(error, kind):
            return error
        error = error.__cause__
    return None
