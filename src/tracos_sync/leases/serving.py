"""What the lease keeper drives and reports: one integration's serving (``Work``), what a
round decided (``Share``), and this replica's name among the others."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Protocol

from tracos_sync.domain.fence import Fence


def replica_name() -> str:
    """This process among the replicas: its host and pid (what an operator looks for), and a
    random tail, since in containers every replica may be pid 1 on a host of the same name."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Work(Protocol):
    """What the keeper starts and stops: one integration's serving."""

    async def start(self, name: str, fence: Fence) -> None:
        """Serve ``name`` while ``fence`` is writable (its lease is held)."""
        ...

    async def stop(self, name: str) -> bool:
        """Stop serving ``name``, within a bound: True once its work has ended; False when it
        is still ending (its lease is then left to expire, not given back)."""
        ...


@dataclass(slots=True)
class Share:
    """What one round decided, for metrics and tests."""

    live: int
    share: int
    held: tuple[str, ...]
    # Leases it wanted but left to the next round, which then comes at once.
    more: bool = False
