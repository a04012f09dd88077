"""One error family, classified once at the adapter boundary (as in the Singer SDK and dlt).

- ``TransientError``: worth retrying (the adapter retries within its budget before giving up).
- ``FatalError``: the run cannot complete; what was done is kept, the rest is left for next run.
- ``RecordRejected``: one input record is bad; it is quarantined with its reasons, the run goes on.
"""

from __future__ import annotations

from .model import Problem


class SyncError(Exception):
    """Base of every error the service raises on purpose."""


class TransientError(SyncError):
    """A failure that may pass if tried again (network blip, primary step-down)."""


class FatalError(SyncError):
    """The run cannot complete (database unreachable after retries, output unwritable)."""


class DatabaseUnavailable(FatalError):
    """MongoDB could not be reached or kept failing for the whole retry budget."""


class DestinationUnwritable(FatalError):
    """The client side refused our writes (folder missing permissions, disk full)."""


class DestinationBusy(DestinationUnwritable):
    """The client side asked not to be called again for ``wait`` seconds (an HTTP
    ``Retry-After``), longer than a run retries: watch mode does not call it before then."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class DestinationRefusesCredentials(DestinationUnwritable):
    """The client side refuses our credentials: nothing works until they are fixed, so watch
    mode asks again less and less often rather than every sweep."""


class RecordRejected(SyncError):
    """A record that cannot be accepted; carries every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.reason}" for p in problems))
        self.problems = problems


class ConfigurationError(SyncError):
    """A setting is missing or invalid; raised before anything is touched (exit code 2)."""
