"""The keeper's work in watch mode: a loop per integration held, stopped within its grace, and
a loop that fails (bad configuration) reported, not left holding a lease nobody serves."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.leases import FakeClock, InMemoryLeaseStore
from tracos_sync.app import Integration
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.fence import Fence
from tracos_sync.watch_leases import LeasedWork

ACME = Integration(
    "acme",
    connector=Any,
    database="d",
    collection="c",
    state_collection="s",
    dead_letter_collection="l",
)  # type: ignore[arg-type]


async def a_fence() -> Fence:
    lease = await InMemoryLeaseStore(FakeClock()).take("acme", "r1", 15)
    assert lease is not None
    return Fence(lease, math.inf)


def test_a_loop_that_fails_is_reported() -> None:
    async def scenario() -> None:
        async def serve(integration: Integration, stop: asyncio.Event, fence: Fence) -> None:
            raise ConfigurationError("bad")

        work = LeasedWork([ACME], serve)
        await work.start("acme", await a_fence())
        with pytest.raises(ConfigurationError):
            await asyncio.wait_for(work.failed, 5)

    asyncio.run(scenario())


def test_a_loop_that_ends_by_itself_or_is_stopped_is_no_failure() -> None:
    async def scenario() -> None:
        async def serve(integration: Integration, stop: asyncio.Event, fence: Fence) -> None:
            await stop.wait()

        work = LeasedWork([ACME], serve)
        await work.start("acme", await a_fence())
        assert work.serving() == ["acme"]
        await work.stop("acme")
        assert work.serving() == []
        assert not work.failed.done()

    asyncio.run(scenario())


def test_a_loop_that_does_not_stop_within_its_grace_is_cancelled() -> None:
    async def scenario() -> None:
        cancelled = asyncio.Event()

        async def serve(integration: Integration, stop: asyncio.Event, fence: Fence) -> None:
            try:
                await asyncio.Event().wait()  # deaf to its stop
            except asyncio.CancelledError:
                cancelled.set()
                raise

        work = LeasedWork([ACME], serve, grace=0.05)
        await work.start("acme", await a_fence())
        await asyncio.wait_for(work.stop("acme"), 5)
        assert cancelled.is_set()
        assert not work.failed.done()

    asyncio.run(scenario())


def test_a_loop_that_will_not_end_is_left_and_said_within_two_graces() -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def serve(integration: Integration, stop: asyncio.Event, fence: Fence) -> None:
            while not release.is_set():  # deaf to its stop, and to a cancellation
                with contextlib.suppress(asyncio.CancelledError):
                    await release.wait()

        work = LeasedWork([ACME], serve, grace=0.05)
        await work.start("acme", await a_fence())
        with capture_logs() as logs:
            stopped = await asyncio.wait_for(work.stop("acme"), 5)
        assert stopped is False
        assert [e["event"] for e in logs] == ["lease.work_not_stopped"]
        release.set()

    asyncio.run(scenario())
