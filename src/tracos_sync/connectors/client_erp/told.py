"""Telling every problem of a refused input in the logs, one line each (``inbound.problem``):
a dry run writes no reason file, so its log is the only place they are all said."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tracos_sync.domain.model import Problem


def tell_problems(log: Any, problems: Iterable[Problem], **where: Any) -> None:
    """One ``inbound.problem`` line per problem, with ``where`` (the file or page) and the
    record index, JSON path and reason."""
    for problem in problems:
        log.warning(
            "inbound.problem",
            **where,
            record=problem.record,
            path=problem.path,
            reason=problem.reason,
        )
