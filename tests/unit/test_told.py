"""A dry run tells each problem of a refused input on a line of its own, but at most
TOLD_PER_INPUT of one input (a large file comes in parts): a hostile pass saw 700,000 lines for
one 4.8 MB file whose every record was refused."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from tracos_sync.connectors.client_erp.told import TOLD_PER_INPUT, tell_problems
from tracos_sync.domain.model import Problem

log = structlog.get_logger("test")


def problems(count: int, first: int = 0) -> list[Problem]:
    return [Problem("$.x", "bad", record=first + n) for n in range(count)]


def test_the_problems_of_one_input_are_told_up_to_the_limit_across_its_parts() -> None:
    with capture_logs() as logs:
        told = 0
        for part in range(5):  # five parts of one large file, 60 problems each
            told = tell_problems(log, problems(60, part * 60), told=told, file="big.json")
    assert told == 300
    lines = [entry for entry in logs if entry["event"] == "inbound.problem"]
    assert len(lines) == TOLD_PER_INPUT
    assert [entry["record"] for entry in lines] == list(range(TOLD_PER_INPUT))
    rest = [entry for entry in logs if entry["event"] == "inbound.problems_not_told"]
    assert len(rest) == 1 and rest[0]["file"] == "big.json"


def test_a_few_problems_are_all_told_and_nothing_more() -> None:
    with capture_logs() as logs:
        tell_problems(log, problems(3), file="small.json")
    assert [entry["event"] for entry in logs] == ["inbound.problem"] * 3
