"""A run's total (``run.total``, the report's top level) says the worst of its integrations: an
integration whose mapping refused every record is not hidden by another that took its own, nor
by a sum in which its refusals vanish."""

from __future__ import annotations

import pytest

from tracos_sync.outcomes import RunOutcome, total_of


def outcome(name: str, **counts: int) -> RunOutcome:
    result = RunOutcome("run", False, name, completed=True)
    for key, value in counts.items():
        setattr(result.stats, key, value)
    return result


REFUSED = {"rejected": 3, "refused_by_mapping": 3}
TOOK = {"inserted": 2}


@pytest.mark.parametrize(
    ("parts", "status"),
    [
        ([REFUSED, REFUSED], "refused"),
        ([REFUSED, TOOK], "refused"),
        ([TOOK, {}], "ok"),
        ([REFUSED, {"deferred": 1}], "partial"),
        ([{}, {}], "ok"),
    ],
)
def test_the_total_says_the_worst_status_of_its_integrations(
    parts: list[dict[str, int]], status: str
) -> None:
    outcomes = [outcome(f"i{n}", **counts) for n, counts in enumerate(parts)]
    total = total_of(outcomes)
    assert total.status == status
    assert total.stats.refused_by_mapping == sum(o.stats.refused_by_mapping for o in outcomes)


def test_a_failed_integration_fails_the_total() -> None:
    failed = outcome("a", **REFUSED)
    failed.error = RuntimeError("database gone")
    assert total_of([failed, outcome("b", **TOOK)]).status == "failed"
