"""A model-based randomized fault campaign (hypothesis stateful testing).

Rules: the client drops new / newer / older / duplicate / bad files; TracOS inserts and edits
documents; syncs run (the CLI, as a user runs it), alone, two at once, SIGKILLed after a random
delay, or an outbound run paused (SIGSTOP) while TracOS edits and another run delivers; the
database is SIGKILLed (between runs or during one) and restarted on its files; a folder turns
unwritable and back; the unique index on number is dropped; (long profile) `watch` idles past
another host's stale limit. After every step the invariants of ``campaign.py`` are checked.

The short profile runs in the normal suite; `make chaos` runs the long one for CHAOS_SECONDS
(600 by default) and prints what it did and every violation, with the steps that led to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import orjson
import pytest
from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pymongo.errors import OperationFailure

from tests.builders import client_record
from tests.conftest import Result
from tests.faults.campaign import (
    CLIENT,
    Shared,
    Tally,
    World,
    as_other_host,
    can_mount,
    duplicate_numbers,
    files_accounted,
    left_unsynced,
    newest_not_winning,
    read_only,
    synced_without_content,
    wait_until,
    written_since,
)

CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "0"))
SHORT_SEED = int(os.environ.get("CHAOS_SHORT_SEED", "3"))
COMMANDS = st.sampled_from(["run", "inbound", "outbound"])
PICK = st.integers(0, 10**6)
WATCH_EVERY = 60.0
PAUSED_RUN_DOCUMENTS = 40  # pages of 2: the paused run is still writing when it is stopped
# Violations of a fix in progress on another branch: tolerated (xfail) in the long profile only.
# (watch_takes_files was one until claim liveness reached main.)
KNOWN: dict[str, str] = {}


class CampaignOver(Exception):
    """The long profile's time is up: ends hypothesis's loop from inside an example."""


@dataclass
class Profile:
    shared: Shared
    long: bool
    can_mount: bool
    deadline: float = float("inf")
    started: float = field(default_factory=time.monotonic)
    watch_idles: int = 0
    tally: Tally = field(default_factory=Tally)


class Campaign(RuleBasedStateMachine):
    profile: ClassVar[Profile]

    def __init__(self) -> None:
        super().__init__()
        self.world = World(self.profile.shared)
        self.tally = self.profile.tally
        self.tally.examples += 1
        self.steps: list[str] = []
        self.next_number = 1
        self.broken = False  # long profile: a violation was recorded, the rest is skipped
        self.settled = False  # a sync completed: every client file has been processed
        self.all_out = False  # an outbound completed after the last TracOS change

    def teardown(self) -> None:
        self.world.close()

    # -- bookkeeping --------------------------------------------------------------------------

    def begin(self, text: str) -> bool:
        if time.monotonic() > self.profile.deadline:
            raise CampaignOver
        if self.broken:
            return False
        self.steps.append(text)
        self.tally.steps += 1
        self.settled = self.all_out = False
        return True

    def violation(self, check: str, problems: list[str]) -> None:
        if not problems or self.broken:
            return
        detail = "; ".join(problems[:4]) + (f" (+{len(problems) - 4})" if len(problems) > 4 else "")
        self.tally.violations.append((check, detail, list(self.steps)))
        if self.profile.long:
            self.broken = True  # keep going with the next example, on a fresh world
            return
        raise AssertionError(f"{check}: {detail}\nafter: {' -> '.join(self.steps)}")

    def expect_ok(self, what: str, result: Result, codes: tuple[int, ...] = (0,)) -> bool:
        self.tally.syncs += 1
        failed = result.code not in codes or "Traceback" in result.output
        self.violation(
            "runs_complete",
            [f"{what}: exit {result.code}: {result.output[-600:]}"] if failed else [],
        )
        return not failed

    def watch_idle_due(self) -> bool:
        """The watch step is slow (a watch started, idle, stopped): once per WATCH_EVERY s."""
        elapsed = time.monotonic() - self.profile.started
        return self.profile.watch_idles * WATCH_EVERY <= elapsed

    def fresh(self) -> int:
        self.next_number += 1
        return self.next_number - 1

    def stored(self, pick: int) -> int | None:
        numbers = [n for n in self.world.stored_numbers() if n in self.world.versions]
        return numbers[pick % len(numbers)] if numbers else None

    def known(self, pick: int) -> int:
        numbers = sorted(self.world.versions)
        return numbers[pick % len(numbers)]

    def after_syncs(self, commands: list[str]) -> None:
        self.settled = any(c in ("run", "inbound") for c in commands)
        self.all_out = any(c in ("run", "outbound") for c in commands)

    # -- the client ---------------------------------------------------------------------------

    @rule(minutes=st.integers(0, 30))
    def client_sends_new(self, minutes: int) -> None:
        number = self.fresh()
        if self.begin(f"client new {number}@{minutes}"):
            self.world.drop_version(number, minutes)

    @precondition(lambda self: self.world.versions)
    @rule(pick=PICK, ahead=st.integers(1, 10))
    def client_sends_newer(self, pick: int, ahead: int) -> None:
        number = self.known(pick)
        minutes = self.world.latest(number) + ahead
        if self.begin(f"client newer {number}@{minutes}"):
            self.world.drop_version(number, minutes)

    @precondition(lambda self: self.world.versions)
    @rule(pick=PICK, back=st.integers(0, 10))
    def client_sends_older_or_tie(self, pick: int, back: int) -> None:
        number = self.known(pick)
        minutes = self.world.latest(number) - back
        taken = {v.minutes for v in self.world.versions[number] if v.origin == CLIENT}
        if minutes not in taken and self.begin(f"client older {number}@{minutes}"):
            self.world.drop_version(number, minutes)

    @precondition(lambda self: self.world.dropped)
    @rule(pick=PICK)
    def client_resends(self, pick: int) -> None:
        good = sorted(set(self.world.dropped) - self.world.bad)
        if good and self.begin("client resends a file"):
            data = good[pick % len(good)]
            self.world.drop(f"{orjson.loads(data)['orderNo']}.json", data)

    @rule(kind=st.sampled_from(["malformed", "date without time", "two statuses"]))
    def client_sends_bad(self, kind: int) -> None:
        number = 100000 + self.fresh()
        if not self.begin(f"client bad {number} ({kind})"):
            return
        label = self.world.label(CLIENT)
        if kind == "malformed":
            data = b'{"orderNo": ' + str(number).encode() + b', "summary": "' + label.encode()
        elif kind == "date without time":
            data = orjson.dumps(client_record(number, summary=label, lastUpdateDate="2024-05-01"))
        else:
            data = orjson.dumps(client_record(number, summary=label, isDone=True))
        self.world.drop(f"{number}.json", data, bad=True)

    # -- TracOS -------------------------------------------------------------------------------

    @rule(minutes=st.integers(0, 30))
    def tracos_inserts(self, minutes: int) -> None:
        number = self.fresh()
        if self.begin(f"tracos insert {number}@{minutes}"):
            self.world.tracos_write(number, minutes, insert=True)

    @rule(pick=PICK, ahead=st.integers(1, 10))
    def tracos_edits(self, pick: int, ahead: int) -> None:
        number = self.stored(pick)
        if number is not None:
            minutes = self.world.latest(number) + ahead
            if self.begin(f"tracos edit {number}@{minutes}"):
                self.world.tracos_write(number, minutes, insert=False)

    @rule()
    def tracos_drops_the_number_index(self) -> None:
        if not self.begin("drop index on number"):
            return
        for index in self.world.docs.list_indexes():
            if list(index["key"]) == ["number"]:
                with contextlib.suppress(OperationFailure):  # another step dropped it already
                    self.world.docs.drop_index(index["name"])

    # -- syncs and faults ---------------------------------------------------------------------

    @rule(command=COMMANDS)
    def sync(self, command: str) -> None:
        if self.begin(f"sync {command}") and self.expect_ok(command, self.world.cli(command)):
            self.after_syncs([command])

    @rule(command=COMMANDS, delay=st.floats(0.0, 2.5))
    def sync_killed(self, command: str, delay: float) -> None:
        if not self.begin(f"sync {command} SIGKILLed after {delay:.2f} s"):
            return
        proc = self.world.popen(command, BATCH_SIZE="3")
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.tally.kills += 1
        self.world.finish(proc)

    @rule(first=COMMANDS, second=COMMANDS)
    def two_syncs_overlap(self, first: str, second: str) -> None:
        if not self.begin(f"syncs {first} + {second} at once"):
            return
        procs = [self.world.popen(first, BATCH_SIZE="3"), self.world.popen(second, BATCH_SIZE="3")]
        results = [self.world.finish(p) for p in procs]
        if all(self.expect_ok(c, r) for c, r in zip((first, second), results, strict=True)):
            self.after_syncs([first, second])

    @rule(during_run=st.booleans(), delay=st.floats(0.0, 2.0))
    def database_killed_and_restarted(self, during_run: bool, delay: float) -> None:
        if not self.begin(
            f"database SIGKILLed {'during a run ' if during_run else ''}and restarted"
        ):
            return
        proc = (
            self.world.popen("run", BATCH_SIZE="3", MONGO_RETRY_SECONDS="3") if during_run else None
        )
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=delay)
        self.profile.shared.restart_server()
        self.tally.restarts += 1
        if proc is not None:
            self.expect_ok("run during restart", self.world.finish(proc), codes=(0, 1))

    @rule(folder=st.sampled_from(["outbound", "processed", "rejected"]))
    def folder_unwritable_then_back(self, folder: str) -> None:
        if not self.profile.can_mount:
            self.tally.notes["rule skipped: folder unwritable (cannot mount a read-only bind)"] += 1
            return
        if not self.begin(f"{folder} unwritable during a run"):
            return
        env = self.world.env
        path = {"outbound": env.outbound, "processed": env.processed, "rejected": env.rejected}
        with read_only(path[folder]):
            self.expect_ok(f"run, {folder} unwritable", self.world.cli("run"), codes=(0, 1))

    @rule(delay=st.floats(0.0, 0.3), edit_all=st.booleans(), picks=st.lists(PICK, max_size=4))
    def outbound_paused_while_another_delivers(
        self, delay: float, edit_all: bool, picks: list[int]
    ) -> None:
        """Run A is paused (SIGSTOP) soon after its first write, likely holding a page it has
        read and not written; TracOS edits; run B delivers the edits; A goes on (SIGCONT)."""
        edits = "all" if edit_all else str(len(picks))
        if not self.begin(f"outbound paused {delay:.2f} s into writing, {edits} edits, another"):
            return
        world = self.world
        for _ in range(PAUSED_RUN_DOCUMENTS - len(world.stored_numbers())):  # enough pages
            world.tracos_write(self.fresh(), 0, insert=True)
        world.docs.update_many({}, {"$set": {"isSynced": False}})  # everything goes out again
        started = time.time_ns()
        held = world.popen("outbound", BATCH_SIZE="2")
        wait_until(lambda: held.poll() is not None or written_since(world, started), 30, 0.002)
        paused = False
        try:
            held.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(held.pid, signal.SIGSTOP)
            paused = True
            self.tally.pauses += 1
        stored = [n for n in world.stored_numbers() if n in world.versions]
        for number in stored if edit_all else {self.stored(pick) for pick in picks}:
            if number is not None:
                world.tracos_write(number, world.latest(number) + 1, insert=False)
        other = world.popen("outbound")
        held_long = False
        try:
            other.wait(timeout=20)
        except subprocess.TimeoutExpired:
            held_long = True
            # Stopped inside its compare-and-rename, A holds the outbound lock: B waits for it,
            # as it should (a stopped lock holder stalls the others; a descheduled one does not
            # stay descheduled).
            holds = any(
                f" FLOCK  ADVISORY  WRITE {held.pid} " in line
                for line in Path("/proc/locks").read_text().splitlines()
            )
            self.tally.notes[
                f"other outbound waited 20 s for the paused one (flock held: {holds})"
            ] += 1
        if paused:
            os.kill(held.pid, signal.SIGCONT)
        other_ok = self.expect_ok("outbound beside a paused one", world.finish(other))
        # Stopped for longer than its retry budget (MONGO_RETRY_SECONDS=5), A may fail its
        # pending database command on resuming (exit 1, nothing marked): allowed then only.
        codes = (0, 1) if held_long else (0,)
        result = world.finish(held)
        if self.expect_ok("paused outbound", result, codes) and other_ok and result.code == 0:
            self.after_syncs(["outbound"])

    @precondition(lambda self: self.profile.long)
    @rule()
    def watch_idles_past_the_stale_limit(self) -> None:
        """Another host's run takes back watch's idle claim folder; watch must go on claiming."""
        # Not a precondition: one that depends on the clock makes hypothesis's replays flaky.
        if not self.watch_idle_due():
            return
        if not self.begin("watch idle past the stale limit; another host runs; client new"):
            return
        self.profile.watch_idles += 1
        self.tally.notes["watch idled past the stale limit beside another host's run"] += 1
        world = self.world
        watch = world.popen("watch", WATCH_INTERVAL="0.2", CLAIM_STALE_SECONDS="1")
        claims = world.env.inbound / ".claims"
        started = wait_until(lambda: claims.is_dir() and any(claims.iterdir()), 30)
        time.sleep(1.5)  # idle longer than CLAIM_STALE_SECONDS: the point of this step
        other = subprocess.run(
            as_other_host(["run"]),
            cwd=world.root,
            env=world.env.environ(CLAIM_STALE_SECONDS="1"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.expect_ok("run on another host", Result(other.returncode, other.stdout, other.stderr))
        world.drop_version(self.fresh(), 0)
        took = wait_until(lambda: not world.waiting(), 8)
        watch.send_signal(signal.SIGTERM)
        self.expect_ok("watch", world.finish(watch, timeout=30))
        problem = "watch left a new file waiting 8 s after another host took back its claims"
        self.violation("watch_takes_files", [] if took or not started else [problem])

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_number_twice(self) -> None:
        if not self.broken:
            self.violation("no_number_twice", duplicate_numbers(self.world))

    @invariant()
    def every_client_file_once(self) -> None:
        if not self.broken:
            self.violation("every_client_file_once", files_accounted(self.world))

    @invariant()
    def synced_means_delivered(self) -> None:
        if not self.broken:
            self.violation("synced_means_delivered", synced_without_content(self.world))

    @invariant()
    def newest_copy_wins(self) -> None:
        if self.broken or not self.settled:
            return
        left = [f"{p.name} left in a claim" for p in self.world.claimed()]
        left += [f"{p.name} left waiting" for p in self.world.waiting()]
        self.violation("claims_recovered", left)
        self.violation("newest_copy_wins", newest_not_winning(self.world))

    @invariant()
    def everything_went_out(self) -> None:
        if not self.broken and self.all_out:
            self.violation("everything_went_out", left_unsynced(self.world))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    world = Shared(tmp_path_factory.mktemp("campaign"))
    yield world
    world.close()


def profile_settings(examples: int, steps: int, verbosity: Verbosity) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        verbosity=verbosity,
        # No shrinking: each step runs processes; the failing steps are printed as they ran.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def test_short_campaign(shared: Shared) -> None:
    """A few examples in the normal suite, every invariant enforced (bounded: ~30 s)."""
    Campaign.profile = Profile(shared, long=False, can_mount=can_mount(shared.root))
    start = time.monotonic()
    # A fixed seed: the same mix of faults every time (kills, a restart, a paused run), so a
    # failure here is reproducible; the long profile draws at random.
    test = get_state_machine_test(Campaign, settings=profile_settings(3, 10, Verbosity.normal))
    seed(SHORT_SEED)(test)()
    print(Campaign.profile.tally.report(time.monotonic() - start))


@pytest.mark.skipif(not CHAOS_SECONDS, reason="the long campaign: make chaos (CHAOS_SECONDS)")
@pytest.mark.timeout(CHAOS_SECONDS + 600)
def test_long_campaign(shared: Shared) -> None:
    start = time.monotonic()
    profile = Campaign.profile = Profile(
        shared, long=True, can_mount=can_mount(shared.root), deadline=start + CHAOS_SECONDS
    )
    restarts = 0
    while time.monotonic() < profile.deadline:
        try:
            run_state_machine_as_test(
                Campaign, settings=profile_settings(10**6, 25, Verbosity.quiet)
            )
        except FlakyStrategyDefinition:
            # The world is real (processes, files, a database), so a prefix of rules replayed
            # by hypothesis may not draw what it drew the first time. That is the harness, not
            # the service: the invariants' findings are in the tally, checked below. Go on with
            # fresh examples.
            restarts += 1
        except Exception:
            # CampaignOver, or hypothesis's complaint that the example it replays to report it
            # stopped earlier than the first time (it does: the time is still up).
            if time.monotonic() < profile.deadline:
                raise
    tally = profile.tally
    print("\n" + tally.report(time.monotonic() - start), flush=True)
    print(f"hypothesis restarted after a replay that drew differently: {restarts}", flush=True)
    unknown = [v for v in tally.violations if v[0] not in KNOWN]
    assert not unknown, f"{len(unknown)} violations (see the report above)"
    if tally.violations:
        pytest.xfail("; ".join(sorted({KNOWN[v[0]] for v in tally.violations})))


def test_campaign_checks_catch_what_they_claim(shared: Shared, tmp_path: Path) -> None:
    """The invariants are not vacuous: each flags the breakage it is for."""
    world = World(shared)
    try:
        world.drop_version(1, 5)
        assert files_accounted(world) == []
        (world.env.inbound / "1.json").unlink()
        assert files_accounted(world) and files_accounted(world)[0].startswith("client file lost")
        world.tracos_write(2, 3, insert=True)
        world.docs.update_one({"number": 2}, {"$set": {"isSynced": True}})
        assert synced_without_content(world)
        assert newest_not_winning(world) == ["1 missing, newest is " + repr(world.versions[1][0])]
        world.docs.update_one({"number": 2}, {"$set": {"title": "older", "isSynced": False}})
        assert len(newest_not_winning(world)) == 2
        assert left_unsynced(world) == ["2 still unsynced"]
        world.docs.insert_one({"number": 2, "title": "again"})
        assert duplicate_numbers(world) == ["number 2 stored 2 times"]
    finally:
        world.close()
