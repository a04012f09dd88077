"""Telling the problems of a refused input in the logs, one line each (``inbound.problem``): a
dry run writes no reason file, so its log is the only place they are said. At most
``TOLD_PER_INPUT`` of one input's, then one line for the rest: a large file whose every record is
refused would otherwise write a line per record (700,000 for 4.8 MB, found by a hostile pass)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracos_sync.domain.model import Problem

TOLD_PER_INPUT = 100


def tell_problems(log: Any, problems: Sequence[Problem], told: int = 0, **where: Any) -> int:
    """One ``inbound.problem`` line per problem, with ``where`` (the file or page) and the
    record index, JSON path and reason, until the input's ``TOLD_PER_INPUT``; ``told`` is how many
    of this input's were told before (a large file comes in parts). Returns the new count."""
    room = max(0, TOLD_PER_INPUT - told)
    for problem in problems[:room]:
        log.warning(
            "inbound.problem",
            **where,
            record=problem.record,
            path=problem.path,
            reason=problem.reason,
        )
    if told < TOLD_PER_INPUT < told + len(problems):
        log.warning(
            "inbound.problems_not_told",
            **where,
            reason=f"only the first {TOLD_PER_INPUT} problems of one input are told, one a "
            "line; a run's reason file (rejected/*.error.json) holds them all",
        )
    return told + len(problems)
