"""``ClientBackoff``: how long an integration's watch loop waits after a sweep for what its ERP
said: ``Retry-After`` beyond a run's budget honoured across sweeps (capped), refused credentials
asked again less and less often (capped), ``WATCH_INTERVAL`` otherwise."""

from __future__ import annotations

from tracos_sync.connectors.declarative_http.requester import (
    ApiAsksToWait,
    ApiUnavailable,
    CredentialsRefused,
)
from tracos_sync.domain.errors import DatabaseUnavailable, FatalError
from tracos_sync.watch_backoff import MAX_ASKED_WAIT, MAX_CREDENTIALS_WAIT, ClientBackoff


def test_a_retry_after_beyond_the_budget_is_waited_across_sweeps_at_most_the_cap() -> None:
    backoff = ClientBackoff(2.0)
    assert backoff.after(ApiAsksToWait("list records: HTTP 429", 3_600)) == 3_600
    assert backoff.after(ApiAsksToWait("list records: HTTP 429", 86_400)) == MAX_ASKED_WAIT
    assert backoff.after(ApiAsksToWait("list records: HTTP 429", 0.5)) == 2.0  # never sooner
    assert backoff.after(None) == 2.0


def test_refused_credentials_are_asked_again_less_and_less_often() -> None:
    backoff = ClientBackoff(1.0)
    refused = CredentialsRefused("token endpoint refuses our client credentials")
    waits = [backoff.after(refused) for _ in range(12)]
    assert waits[:4] == [2.0, 4.0, 8.0, 16.0]
    assert waits[-1] == MAX_CREDENTIALS_WAIT and max(waits) == MAX_CREDENTIALS_WAIT
    assert backoff.after(None) == 1.0  # fixed: back to the interval
    assert backoff.after(refused) == 2.0  # and a new refusal starts over


def test_other_failures_wait_the_interval_and_a_wrapped_cause_counts() -> None:
    backoff = ClientBackoff(1.0)
    assert backoff.after(ApiUnavailable("still failing")) == 1.0
    assert backoff.after(DatabaseUnavailable("mongo away")) == 1.0
    wrapped = FatalError("the sweep failed")
    wrapped.__cause__ = ApiAsksToWait("HTTP 503", 60)
    assert backoff.after(wrapped) == 60
