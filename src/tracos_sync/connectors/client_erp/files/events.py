"""When a file of an inbound folder may be ready to take, from that folder's file events: which
events count, how watchfiles is paced, and the wake of one folder's follower (``Subscriber``).
One watch serves every folder of the process (``folder_watch``).

Events are hints only: they can be lost (a full kernel queue), and a network mount may have none.
The sweep decides what is taken, and goes on at its interval whatever happens here.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from watchfiles import Change

# watchfiles looks for new events every STEP_MS and hands over what it has once a step brings
# nothing new, or DEBOUNCE_MS after the first one under a steady stream: small, as each
# millisecond here is a millisecond of a file's way to TracOS (a step is a cheap wake-up).
STEP_MS = 10
DEBOUNCE_MS = 40
# Upper bound of one wait inside watchfiles' thread; only a safety net, as stopping sets the
# event that thread checks every step.
THREAD_TIMEOUT_MS = 1_000
# A file younger than INBOUND_MIN_AGE_SECONDS is left by the sweep: the wake for it comes that
# long after its last change, plus this much so that its age is then surely over the minimum.
AGE_MARGIN_SECONDS = 0.02


def may_be_input(change: Change, path: str) -> bool:
    """A file that arrived or changed under a name the sweep would take. Files leaving (our own
    claims renaming them away) and temp or hidden names wake nothing."""
    name = os.path.basename(path)
    return change != Change.deleted and name.endswith(".json") and not name.startswith(".")


class Due:
    """Sets ``ready`` at once after a change, or ``delay`` seconds after it. Under a steady
    stream of changes, a wake already planned is kept (a file it was for is ready then) and the
    latest change gets its own wake after it, so no change waits longer than ``delay``."""

    def __init__(self, delay: float, ready: asyncio.Event) -> None:
        self._delay = delay + AGE_MARGIN_SECONDS if delay > 0 else 0.0
        self._ready = ready
        self._timer: asyncio.TimerHandle | None = None
        self._next: float | None = None  # when the latest change is due, if after the timer

    def changed(self) -> None:
        if not self._delay:
            self._ready.set()
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + self._delay
        if self._timer is None:
            self._timer = loop.call_at(when, self._fire)
        else:
            self._next = when

    def _fire(self) -> None:
        self._ready.set()
        self._timer = None
        if self._next is not None:
            self._timer = asyncio.get_running_loop().call_at(self._next, self._fire)
            self._next = None

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class Subscriber:
    """One follower of one folder's events: woken when its folder joins a watch (what arrived
    before is the sweep's) and for each change, at once or ``min_age_seconds`` after it; ended
    by an error (its folder removed or not watchable, the shared watch failing)."""

    def __init__(self, folder: Path, min_age_seconds: float) -> None:
        self.folder = os.path.abspath(folder)  # as the watch's events name it
        self.min_age_seconds = min_age_seconds
        self._ready = asyncio.Event()
        self.due = Due(min_age_seconds, self._ready)
        self._error: BaseException | None = None

    def watched(self) -> None:
        """Its folder is in a watch (again): events before it were lost, so look now, and
        after the minimum age for a file that was too young then."""
        self._ready.set()
        if self.min_age_seconds > 0:
            self.due.changed()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.set()

    async def next(self) -> None:
        """The next wake; raises the error that ended it."""
        await self._ready.wait()
        if self._error is not None:
            raise self._error
        self._ready.clear()
