"""What the outbound lock's holder file says (``outbound_lock.py``): the holding instance's name,
then its own stale bound. A taker judges the lock stale by the larger of its own bound and the
holder's, so that instances whose ``SFTP_LOCK_STALE_SECONDS`` differ never take a live lock
(G4 of the second hostile pass: one with a shorter bound took over a live holder's)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tracos_sync.domain.text import printable

STALE_KEY = "SFTP_LOCK_STALE_SECONDS="
# The most a holder file's bound counts for: the setting's own upper bound (a file that says
# more does not keep outbound locked longer).
STALE_CAP_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class HolderSaid:
    name: str  # printable, for messages
    stale_seconds: float | None  # None: unsaid (an older version) or unreadable


def holder_file(instance: str, stale_seconds: float) -> bytes:
    """The holder file of ``instance``, whose stale bound is ``stale_seconds``."""
    return f"{instance}\n{STALE_KEY}{stale_seconds:g}\n".encode()


def read_holder_file(said: bytes) -> HolderSaid:
    name, *rest = said.decode(errors="replace").splitlines() or [""]
    stale = None
    for line in rest:
        if not line.startswith(STALE_KEY):
            continue
        try:
            value = float(line.removeprefix(STALE_KEY))
        except ValueError:
            continue
        stale = min(value, STALE_CAP_SECONDS) if math.isfinite(value) else None
    return HolderSaid(printable(name.strip()[:120]) or "(empty)", stale)
