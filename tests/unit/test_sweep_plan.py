"""Watch mode's light sweeps (inbound only, no outbound query): only when files
alone woke it and an open change stream vouches that TracOS wrote nothing to send; a full sweep
after any failure, any change, once the interval has passed, and always without a stream."""

from __future__ import annotations

from tracos_sync.watch import _SweepPlan

INTERVAL = 5.0


def listening_after_a_full_sweep() -> _SweepPlan:
    plan = _SweepPlan(INTERVAL)
    plan.stream_opened()
    assert not plan.light(woken=True, now=0.0), "the first sweep reads TracOS"
    plan.swept(light=False, failed=False, began=0.0)
    return plan


def test_woken_by_files_while_the_stream_says_nothing_changed_it_is_light() -> None:
    plan = listening_after_a_full_sweep()
    for now in (0.1, 0.2, 0.3):
        assert plan.light(woken=True, now=now)
        plan.swept(light=True, failed=False, began=now)


def test_without_a_change_stream_every_sweep_is_full() -> None:
    plan = _SweepPlan(INTERVAL)
    for now in (0.0, 0.1, 0.2):
        assert not plan.light(woken=True, now=now)
        plan.swept(light=False, failed=False, began=now)
    plan = listening_after_a_full_sweep()
    plan.stream_closed()  # it dropped
    assert not plan.light(woken=True, now=0.1)
    plan.swept(light=False, failed=False, began=0.1)
    assert not plan.light(woken=True, now=0.2), "still no stream"


def test_a_change_on_tracos_makes_the_next_sweep_full_and_only_that_one() -> None:
    plan = listening_after_a_full_sweep()
    plan.stream_changed()
    assert not plan.light(woken=True, now=0.1)
    plan.swept(light=False, failed=False, began=0.1)
    assert plan.light(woken=True, now=0.2)


def test_a_change_during_a_full_sweep_makes_the_next_one_full_too() -> None:
    plan = listening_after_a_full_sweep()
    plan.stream_changed()
    assert not plan.light(woken=True, now=0.1)
    plan.stream_changed()  # written after that sweep's outbound query may have read
    plan.swept(light=False, failed=False, began=0.1)
    assert not plan.light(woken=True, now=0.2)


def test_a_sweep_not_woken_by_files_is_full() -> None:
    plan = listening_after_a_full_sweep()
    assert not plan.light(woken=False, now=0.1)  # the interval, or the change stream


def test_a_failure_makes_the_next_sweep_full() -> None:
    plan = listening_after_a_full_sweep()
    assert plan.light(woken=True, now=0.1)
    plan.swept(light=True, failed=True, began=0.1)
    assert not plan.light(woken=True, now=0.2)
    plan.swept(light=False, failed=True, began=0.2)  # failed again
    assert not plan.light(woken=True, now=0.3)
    plan.swept(light=False, failed=False, began=0.3)
    assert plan.light(woken=True, now=0.4)


def test_a_full_sweep_runs_at_least_every_interval_under_a_flow_of_files() -> None:
    plan = listening_after_a_full_sweep()
    now, full = 0.0, []
    while now < 3 * INTERVAL + 0.5:
        now += 0.05
        light = plan.light(woken=True, now=now)
        if not light:
            full.append(now)
        plan.swept(light=light, failed=False, began=now)
    assert len(full) == 3
    assert all(b - a <= INTERVAL + 0.06 for a, b in zip([0.0, *full], full, strict=False))
