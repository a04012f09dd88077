"""The fence of one integration's writes: the lease this replica holds on it, and until when
(by this process's monotonic clock) it may still write on its strength.

The lease keeper updates it at every renewal and marks it lost when the lease is lost or given
back; the stores put its epoch and the lease's expiry (the store's clock) in the filter of every
conditional write, and check ``writable`` before a write no filter can fence (an insert).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import FatalError
from .ports.leases import Lease


class LeaseLost(FatalError):
    """This replica no longer holds the lease of the integration it was writing for."""


@dataclass(slots=True)
class Fence:
    """``deadline``: when this holder must stop writing, by ``clock`` (monotonic): the instant
    the renewal that gave ``lease`` was sent, plus a share of the TTL (see the keeper). It never
    trusts the host's wall clock."""

    lease: Lease
    deadline: float
    clock: Callable[[], float] = field(default=time.monotonic)
    lost: bool = False

    @property
    def epoch(self) -> int:
        return self.lease.epoch

    def renewed(self, lease: Lease, deadline: float) -> None:
        self.lease = lease
        self.deadline = deadline

    def lose(self) -> None:
        self.lost = True

    def writable(self) -> bool:
        return not self.lost and self.clock() < self.deadline

    def check(self) -> None:
        """Raises ``LeaseLost`` when this replica may no longer write on this lease."""
        if not self.writable():
            raise LeaseLost(
                f"the lease of {self.lease.name!r} (epoch {self.lease.epoch}) is no longer this "
                "replica's: its writes stop"
            )
