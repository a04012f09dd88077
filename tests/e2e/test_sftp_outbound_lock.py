"""The outbound folder's lock on Debian's OpenSSH server (tests/support/sshd.py): two instances
writing conflicting versions at once (the newer always wins), two instances taking over one
stale lock (one wins), a holder frozen past the stale bound (taken over; woken, it writes
nothing), and a frozen holder within it (the other run defers, naming it, within
LOCK_TIMEOUT_SECONDS)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.builders import T0, read_json, tracos_doc
from tests.conftest import Env
from tests.fakes import InMemoryConnectorStateStore
from tests.support.sftp import names, sftp_settings, sftp_store
from tests.support.sshd import Sshd
from tracos_sync.app.settings import AppSettings
from tracos_sync.connectors.client_erp.files.sftp.connector import create
from tracos_sync.connectors.client_erp.files.sftp.outbound_lock import (
    HOLDER,
    LINGER_SECONDS,
    LOCK_NAME,
    LockTimedOut,
    OutboundLock,
)
from tracos_sync.connectors.client_erp.files.sftp.sink import SftpSink
from tracos_sync.domain.model import Status, WorkOrder
from tracos_sync.domain.ports import ConnectorConfig, ConnectorContext


def _updated(path: Path) -> datetime:
    return datetime.fromisoformat(read_json(path)["lastUpdateDate"])


def _sink(sshd: Sshd, **more: str) -> SftpSink:
    """A sink of its own instance: its own connector, connection and lock name."""
    settings = {k.lower(): v for k, v in sftp_settings(sshd, **more).items()}
    connector = create(ConnectorConfig(settings=settings))
    context = ConnectorContext(InMemoryConnectorStateStore(), lock_timeout_seconds=60)
    return connector.sink(context)


def test_two_instances_writing_conflicting_versions_at_once_the_newer_always_wins(
    sshd: Sshd,
) -> None:
    rng = random.Random(24)
    numbers = range(1, 121)
    newest: dict[int, int] = {}

    def versions(who: str, round_: int) -> list[WorkOrder]:
        orders = []
        for n in numbers:
            minutes = rng.randrange(1, 100_000)
            newest[n] = max(newest.get(n, 0), minutes)
            stamp = T0 + timedelta(minutes=minutes)
            orders.append(WorkOrder(n, Status.PENDING, f"{who}{round_}", T0, stamp))
        return orders

    async def overlap() -> None:
        a, b = _sink(sshd), _sink(sshd)
        await asyncio.gather(a.prepare(), b.prepare())
        try:
            for round_ in range(4):
                deliveries = await asyncio.gather(
                    a.deliver(versions("a", round_)), b.deliver(versions("b", round_))
                )
                for delivery in deliveries:
                    assert delivery.fatal is None and delivery.deferred == []
                    written = len(delivery.delivered) + len(delivery.superseded)
                    assert written == len(numbers)
        finally:
            await asyncio.gather(a.close(), b.close())

    asyncio.run(overlap())

    out = sshd.served / "out"
    wrong = {
        n: _updated(out / f"{n}.json")
        for n in numbers
        if _updated(out / f"{n}.json") != T0 + timedelta(minutes=newest[n])
    }
    assert wrong == {}
    # Each let go of its lock at close; no temp file is left.
    assert names(out) == sorted(f"{n}.json" for n in numbers)


class _HeldBack:
    """A store whose moves and removals of the lock wait until ``go`` is set: a taker that
    judged the lock stale, then was descheduled while another took it over."""

    def __init__(self, store: Any, lock: PurePosixPath) -> None:
        self._store = store
        self._lock = lock
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _wait(self, path: PurePosixPath) -> None:
        if path == self._lock or self._lock in path.parents:
            self.reached.set()
            await self.go.wait()

    async def move_no_clobber(self, source: PurePosixPath, target: PurePosixPath) -> None:
        await self._wait(source)
        await self._store.move_no_clobber(source, target)

    async def unlink(self, path: PurePosixPath) -> None:
        await self._wait(path)
        await self._store.unlink(path)

    async def rmdir(self, path: PurePosixPath) -> None:
        await self._wait(path)
        await self._store.rmdir(path)


FIRST = b"first\nSFTP_LOCK_STALE_SECONDS=60\n"


def test_of_two_instances_taking_over_one_stale_lock_one_holds_it(sshd: Sshd) -> None:
    out = sshd.served / "out"
    lock = out / LOCK_NAME
    lock.mkdir(parents=True)
    stale = lock / HOLDER
    stale.write_bytes(b"dead-instance\n")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    sshd.give_to_server(out, lock, stale)
    folder = PurePosixPath(out)

    async def race() -> None:
        first_store, late_store = sftp_store(sshd), sftp_store(sshd)
        late = _HeldBack(late_store, folder / LOCK_NAME)
        first = OutboundLock(first_store, folder, "first", stale_seconds=60, timeout=1)
        second = OutboundLock(late, folder, "late", stale_seconds=60, timeout=1)
        try:
            taking = asyncio.create_task(second.hold())
            await late.reached.wait()  # judged stale, about to take it over
            await first.hold()  # took it over first
            assert stale.read_bytes() == FIRST
            late.go.set()
            with pytest.raises(LockTimedOut, match="instance first"):
                await taking
            assert stale.read_bytes() == FIRST  # still the first one's
        finally:
            await first.close()
            await second.close()
            await first_store.close()
            await late_store.close()

    asyncio.run(race())
    assert not lock.exists()


def test_a_taker_with_a_shorter_stale_bound_waits_the_one_its_holder_wrote(sshd: Sshd) -> None:
    """G4 of the second hostile pass: instances with different SFTP_LOCK_STALE_SECONDS. The
    holder writes its own bound in the lock; a taker waits the larger of its own and that one,
    so a live lock is never taken over (it was, by one whose bound was shorter), and a stale
    one still is."""
    out = sshd.served / "out"
    lock = out / LOCK_NAME
    lock.mkdir(parents=True)
    holder = lock / HOLDER
    said = b"patient\nSFTP_LOCK_STALE_SECONDS=600\n"
    holder.write_bytes(said)
    sshd.give_to_server(out, lock, holder)
    folder = PurePosixPath(out)

    def refreshed(seconds_ago: float) -> None:
        then = time.time() - seconds_ago
        os.utime(holder, (then, then))

    async def take(expect_held: bool) -> None:
        store = sftp_store(sshd)
        hasty = OutboundLock(store, folder, "hasty", stale_seconds=4, timeout=0.3)
        try:
            if expect_held:
                with pytest.raises(LockTimedOut, match="instance patient"):
                    await hasty.hold()
            else:
                await hasty.hold()
                assert holder.read_bytes() == b"hasty\nSFTP_LOCK_STALE_SECONDS=4\n"
        finally:
            await hasty.close()
            await store.close()

    refreshed(30)  # stale by the taker's 4 s, live by the holder's 600 s
    asyncio.run(take(expect_held=True))
    assert holder.read_bytes() == said
    refreshed(700)  # stale by both
    asyncio.run(take(expect_held=False))
    assert not lock.exists()


class _AtRename:
    """A store whose outbound renames call ``before`` just before the sink's own check, and
    ``after`` between that check and the rename's sending."""

    def __init__(self, store: Any, before: Any, after: Any) -> None:
        self._store, self._before, self._after = store, before, after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def write_atomic(self, path: PurePosixPath, data: bytes, **options: Any) -> None:
        check = options.pop("before_replace", lambda: None)

        def checked() -> None:
            self._before()
            check()
            self._after()

        await self._store.write_atomic(path, data, before_replace=checked, **options)


async def _deliver_one(sshd: Sshd, before: Any, after: Any) -> Any:
    """Order 7 delivered by a sink of its own; ``before(sink)`` and ``after()`` at its rename."""
    connector = create(
        ConnectorConfig(settings={k.lower(): v for k, v in sftp_settings(sshd).items()})
    )
    store = sftp_store(sshd)

    async def closed() -> None:
        await store.close()

    sinks: list[SftpSink] = []
    at_rename = _AtRename(store, lambda: before(sinks[0]), after)
    sinks.append(SftpSink(at_rename, connector.settings, connector.mapping, closed))
    await sinks[0].prepare()
    try:
        return await sinks[0].deliver([WorkOrder(7, Status.PENDING, "t", T0, T0)])
    finally:
        await sinks[0].close()


def test_a_rename_is_not_sent_once_the_lease_ran_out(sshd: Sshd) -> None:
    """As after a pause of the whole process between the look and the rename."""

    def lease_runs_out(sink: SftpSink) -> None:
        sink._lock._held.lease_end = time.monotonic() - 1

    delivery = asyncio.run(_deliver_one(sshd, lease_runs_out, lambda: None))

    assert delivery.deferred == [7] and delivery.delivered == []
    assert names(sshd.served / "out") == [LOCK_NAME]  # no longer ours to remove: goes stale


def test_a_rename_on_its_way_when_the_lock_is_taken_over_finds_no_file(sshd: Sshd) -> None:
    """A rename sent before the holder froze and carried out after a take-over (the server
    reads it once the holder runs again): its temp file went away with the lock folder."""
    out = sshd.served / "out"

    def taken_over() -> None:
        (out / LOCK_NAME).rename(out / "moved-away")
        (out / LOCK_NAME).mkdir()
        sshd.give_to_server(out / LOCK_NAME)

    delivery = asyncio.run(_deliver_one(sshd, lambda _: None, taken_over))

    assert delivery.deferred == [7] and delivery.delivered == []
    assert not (out / "7.json").exists()


def _wait_for(condition: Any, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.002)


def _written(out: Path) -> list[str]:
    return [p for p in names(out) if p.endswith(".json") and not p.startswith(".")]


def _in_flight(out: Path) -> bool:
    """Temp files of outbound files on their way, in the lock folder."""
    try:
        return any(name != HOLDER for name in names(out / LOCK_NAME))
    except FileNotFoundError:  # let go between two listings
        return False


def test_a_holder_frozen_past_the_stale_bound_is_taken_over_and_writes_nothing_after(
    env: Env, sshd: Sshd
) -> None:
    numbers = range(1, 401)
    env.collection.insert_many([tracos_doc(n, isSynced=False) for n in numbers])
    # A lease of 5 s (half the bound): a rename sent within it reaches the server in time,
    # even on a loaded machine.
    settings = sftp_settings(sshd, SFTP_LOCK_STALE_SECONDS="10", LOCK_TIMEOUT_SECONDS="60")
    out = sshd.served / "out"
    holder = env.popen("outbound", **settings)
    try:
        # Frozen with writes in flight: its first files have landed and others are on their
        # way (their temp files are in its lock folder; frozen between two pages, it would
        # have had nothing to defer).
        _wait_for(lambda: _written(out) and _in_flight(out), holder, 60)
        holder.send_signal(signal.SIGSTOP)
        # Meanwhile every order changes in TracOS; the other instance sends the new version.
        newer = T0 + timedelta(days=1)
        env.collection.update_many({}, {"$set": {"updatedAt": newer, "isSynced": False}})
        other = env.cli("outbound", **settings)
        assert other.code == 0, other.output
        assert "sftp.outbound_lock_taken_over" in other.output, other.output
        assert other.counts()["exported"] == len(numbers), other.output
    finally:
        holder.send_signal(signal.SIGCONT)
    stdout, stderr = holder.communicate(timeout=60)
    said = stdout + stderr

    stale = [n for n in numbers if _updated(out / f"{n}.json") != newer]
    assert stale == []
    assert "sftp.outbound_lock_lost" in said, said
    assert "deferred=0" not in said, said  # it had writes in flight, and made none of them
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0
    assert not (out / LOCK_NAME).exists()


def test_a_frozen_holder_within_the_stale_bound_defers_the_other_run_naming_it(
    env: Env, sshd: Sshd
) -> None:
    env.collection.insert_many([tracos_doc(n, isSynced=False) for n in range(1, 301)])
    out = sshd.served / "out"
    holder = env.popen("outbound", **sftp_settings(sshd))
    try:
        _wait_for((out / LOCK_NAME / HOLDER).exists, holder, 60)
        holder.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        other = env.cli("outbound", **sftp_settings(sshd, LOCK_TIMEOUT_SECONDS="1"))
        took = time.monotonic() - started
        name = (out / LOCK_NAME / HOLDER).read_text().splitlines()[0]
    finally:
        holder.send_signal(signal.SIGCONT)
    stdout, stderr = holder.communicate(timeout=60)

    assert other.code == 1, other.output
    assert "status=partial" in other.output, other.output
    assert f"stayed locked by instance {name}" in other.output, other.output
    assert "taken_over" not in other.output, other.output
    assert took < 40  # its own start-up and one LOCK_TIMEOUT_SECONDS, not the 60 s stale bound
    # Woken within its lease, the holder goes on and sends everything.
    assert holder.returncode == 0, stdout + stderr
    assert len(_written(out)) == 300
    assert env.collection.count_documents({"isSynced": {"$ne": True}}) == 0


def _shortest_watch_interval() -> float:
    return float(AppSettings.model_json_schema()["properties"]["watch_interval"]["minimum"])


def test_a_watch_sweeping_at_the_shortest_interval_lets_a_run_beside_it_have_the_lock(
    sshd: Sshd,
) -> None:
    """G5 of the second hostile pass: a busy watch (a page each sweep, WATCH_INTERVAL at its
    lowest) lets go of the lock between sweeps, so a run beside it has it within a few of its
    tries, not after LOCK_TIMEOUT_SECONDS (the linger was 0.5 s, longer than the interval: the
    watch never let go)."""
    out = sshd.served / "out"
    out.mkdir(parents=True, exist_ok=True)
    sshd.give_to_server(out)
    folder = PurePosixPath(out)
    interval = _shortest_watch_interval()
    assert interval > LINGER_SECONDS

    async def beside() -> float:
        watch_store, run_store = sftp_store(sshd), sftp_store(sshd)
        watch = OutboundLock(watch_store, folder, "watch", stale_seconds=60, timeout=30)
        run = OutboundLock(run_store, folder, "run", stale_seconds=60, timeout=10)
        stop = asyncio.Event()
        swept = asyncio.Event()

        async def sweeps() -> None:
            while not stop.is_set():
                held = await watch.hold()
                await asyncio.sleep(0.02)  # a page delivered
                watch.done(held)
                swept.set()
                await asyncio.sleep(interval)

        sweeping = asyncio.create_task(sweeps())
        try:
            await swept.wait()
            started = time.monotonic()
            held = await run.hold()  # LockTimedOut: the watch never let go
            waited = time.monotonic() - started
            run.done(held)
            return waited
        finally:
            stop.set()
            await sweeping
            await asyncio.gather(watch.close(), run.close())
            await asyncio.gather(watch_store.close(), run_store.close())

    waited = asyncio.run(beside())
    assert waited < 5, f"waited {waited:.1f}s beside a busy watch"
