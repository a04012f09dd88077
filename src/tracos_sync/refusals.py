"""The problems a mapping refused records for, tallied so that a run which refused every record
it read can say why in one line (``inbound.all_refused``): a mapping that does not fit the
client's records (a new integration, or a client that changed its format) refuses them all for
the same kind of reason, which the most common one names.

A reason carries the value it refuses (``"4000130" is not a number written like ...``): counted
by its exact text, every reason of a run would be seen once, and the first would win. Problems
are counted by their path and their reason with the values taken out; one whole problem is kept
as the example shown."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from tracos_sync.domain.model import Problem

# Kinds of problem kept: a run of many different problems must not hold them all in memory
# (the most common kind of such a run is among the first ones seen, or says little anyway).
MAX_KINDS = 1000

# A value in a reason: a quoted string (JSON's or Python's spelling) or a number.
_VALUE = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|-?\b\d+(?:\.\d+)?\b""")

Kind = tuple[str, str]  # (path, reason without its values)


def kind_of(problem: Problem) -> Kind:
    """What makes two problems the same kind: where, and the reason with each value as ``…``."""
    return problem.path, _VALUE.sub("…", problem.reason)


class RefusalTally:
    """How often each kind of problem was seen in a run, with the first one of each kind."""

    __slots__ = ("_counts", "_examples")

    def __init__(self) -> None:
        self._counts: Counter[Kind] = Counter()
        self._examples: dict[Kind, Problem] = {}

    def add(self, problems: Iterable[Problem]) -> None:
        counts = self._counts
        for problem in problems:
            kind = kind_of(problem)
            if kind in counts or len(counts) < MAX_KINDS:
                counts[kind] += 1
                self._examples.setdefault(kind, problem)

    def most_common(self) -> tuple[str, int]:
        """One problem of the most common kind (``path: reason``) and how many times that kind
        was seen (``("", 0)``: none)."""
        found = self._counts.most_common(1)
        if not found:
            return "", 0
        kind, times = found[0]
        example = self._examples[kind]
        return f"{example.path}: {example.reason}", times
