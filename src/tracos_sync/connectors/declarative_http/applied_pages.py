"""What the ``api`` connector's source does with pages once they are applied: a dry run says
what it would refuse; a real run keeps each refused record as a dead letter, and the watermark
moves as far as the pages allow."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from tracos_sync.domain.ports import InboundUnit

from ..client_erp.told import tell_problems
from .state import ConnectorState
from .watermark import PageHandle, Watermark

log = structlog.get_logger("tracos_sync.http")


def tell_would_reject(units: Sequence[InboundUnit]) -> None:
    """A dry run: each page with problems said, and its problems (nothing is quarantined, so the
    log is where they are said)."""
    for unit in units:
        if unit.problems:
            log.warning(
                "inbound.would_reject",
                page=unit.name,
                records=unit.rejected_records,
                problems=len(unit.problems),
            )
            tell_problems(log, unit.problems, page=unit.name)


async def dead_letter_refused(
    state: ConnectorState, units: Sequence[InboundUnit], applied: Watermark
) -> Watermark:
    """Each record of ``units`` refused (while decoding, or by TracOS itself:
    ``InboundUnit.refuse``) kept as a dead letter with all its problems; returns the watermark
    the pages allow, never behind ``applied``."""
    for unit in units:
        handle = unit.handle
        assert isinstance(handle, PageHandle)
        for index in sorted({p.record for p in unit.problems if p.record is not None}):
            payload = handle.refused.get(index, handle.raw[index])
            problems = [p for p in unit.problems if p.record == index]
            times = await state.refused(
                "inbound", f"{unit.name}, record {index}", problems, payload
            )
            log.warning(
                "inbound.record_rejected",
                page=unit.name,
                record=index,
                problems=len(problems),  # every one is in the dead letter
                first=f"{problems[0].path}: {problems[0].reason}",
                times=times,
            )
        applied = max(applied, handle.mark)
    return applied
