"""The reasons a run refused records, tallied so that a run which refused every record it read
can say why in one line (``inbound.all_refused``): a mapping that does not fit the client's
records (a new integration, or a client that changed its format) refuses them all for the same
reason, which the most common one names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tracos_sync.domain.model import Problem

# Distinct reasons kept: a run of many different problems must not hold them all in memory
# (the most common reason of such a run is among the first ones seen, or says little anyway).
MAX_REASONS = 1000


class RefusalTally:
    """How often each problem (its path and reason, whatever the record) was seen in a run."""

    __slots__ = ("_reasons",)

    def __init__(self) -> None:
        self._reasons: Counter[str] = Counter()

    def add(self, problems: Iterable[Problem]) -> None:
        reasons = self._reasons
        for problem in problems:
            text = f"{problem.path}: {problem.reason}"
            if text in reasons or len(reasons) < MAX_REASONS:
                reasons[text] += 1

    def most_common(self) -> tuple[str, int]:
        """The most common problem and how many times it was seen (``("", 0)``: none)."""
        found = self._reasons.most_common(1)
        return found[0] if found else ("", 0)
