"""What a run of each integration did (``RunOutcome``), and how it is told: the summary lines
and the JSON report (``publish``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from tracos_sync.app import DEFAULT_INTEGRATION, Runtime
from tracos_sync.domain.dates import format_instant
from tracos_sync.failures import describe_error
from tracos_sync.logs import redact_text
from tracos_sync.pipeline import RunStats
from tracos_sync.syncer import Command

log = structlog.get_logger("tracos_sync")


@dataclass(slots=True)
class RunOutcome:
    """What one run (or one sweep of watch) of one integration did."""

    command: Command
    dry_run: bool
    integration: str = DEFAULT_INTEGRATION
    stats: RunStats = field(default_factory=RunStats)
    durations: dict[str, float] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: Exception | None = None
    # Done before any stop was asked for: nothing was left for a signal to cut short.
    completed: bool = False
    finished: datetime | None = None
    # A total's integrations: its status is the worst of theirs (``total_of``).
    parts: Sequence[RunOutcome] = ()

    @property
    def status(self) -> str:
        """failed: an error stopped it; partial: it completed but left work for a later run
        (deferred: a lock held too long); refused: it completed, but inbound refused every
        record it read (a mapping that does not fit the client's records refuses them all;
        still exit 0: refused records are quarantined, a rerun would refuse them again); ok."""
        if self.error is not None:
            return "failed"
        if self.parts:
            return max((part.status for part in self.parts), key=_STATUS_ORDER.index)
        if self.stats.deferred:
            return "partial"
        return "refused" if self.stats.all_refused() else "ok"


# From the least to the most in need of a look: a total says the worst of its integrations.
_STATUS_ORDER = ("ok", "refused", "partial", "failed")


def outcomes_for(runtime: Runtime, command: Command, dry_run: bool) -> list[RunOutcome]:
    """One empty outcome per integration, in order."""
    return [RunOutcome(command, dry_run, i.name) for i in runtime.integrations]


def publish(
    runtime: Runtime,
    outcomes: Sequence[RunOutcome],
    *,
    quiet_when_idle: bool = False,
    report: Sequence[RunOutcome] | None = None,
    total: bool = True,
) -> bool:
    """The report (with ``REPORT_PATH``; of ``report``, by default the ``outcomes``), then the
    summary lines: one per integration and, with an integrations file (and ``total``), the
    total, which is the run's last word.
    ``quiet_when_idle``: a sweep that did nothing says nothing (watch). Returns False when the
    report could not be written (logged, and the summary says failed; never raised)."""
    idle = not any(o.stats.did_something() for o in outcomes)
    failed = any(o.error is not None for o in outcomes)
    reported = True
    path = runtime.settings.report_path
    if path is not None and not (quiet_when_idle and idle and not failed):
        try:
            write_report(path, runtime, outcomes if report is None else report)
        except OSError as exc:
            log.error("report.failed", path=str(path), error=exc.strerror or str(exc))
            reported = False
    for outcome in outcomes:
        if quiet_when_idle and not outcome.stats.did_something():
            continue
        named = {"integration": outcome.integration} if runtime.named else {}
        _summary("run.summary", outcome, reported, **named)
    if total and runtime.named and not (quiet_when_idle and idle):
        _summary("run.total", total_of(outcomes), reported, integrations=len(outcomes))
    return reported


def _summary(event: str, outcome: RunOutcome, reported: bool, **fields: Any) -> None:
    flags: dict[str, Any] = {"dry_run": True} if outcome.dry_run else {}
    log.info(
        event,
        **fields,
        command=outcome.command,
        status=outcome.status if reported else "failed",
        **flags,
        **outcome.stats.as_fields(),
    )


def total_of(outcomes: Sequence[RunOutcome]) -> RunOutcome:
    """Every count summed, the longest duration (they ran at once), the worst status of any
    (failed, partial, refused: an integration whose mapping refused every record it read is
    not hidden by another that took its own)."""
    first = outcomes[0]
    total = RunOutcome(first.command, first.dry_run, "*", started=first.started, parts=outcomes)
    for outcome in outcomes:
        for name, count in outcome.stats.counts().items():
            setattr(total.stats, name, getattr(total.stats, name) + count)
        total.stats.refused_by_mapping += outcome.stats.refused_by_mapping
        total.stats.seconds = max(total.stats.seconds, outcome.stats.seconds)
        total.error = total.error or outcome.error
    finished = [o.finished for o in outcomes if o.finished is not None]
    total.finished = max(finished) if finished else None
    return total


def write_report(path: Path, runtime: Runtime, outcomes: Sequence[RunOutcome]) -> None:
    """The run's JSON report, written atomically (temp file, rename): with several
    integrations, the total and each integration's own under ``integrations``. Its folder is
    not created (checked at start-up: ``check_report_path``)."""
    if len(outcomes) == 1:
        report = _report(runtime, outcomes[0])
    else:
        report = _report(runtime, total_of(outcomes)) | {
            "integrations": {o.integration: _report(runtime, o) for o in outcomes}
        }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _report(runtime: Runtime, outcome: RunOutcome) -> dict[str, Any]:
    error = None
    if outcome.error is not None:
        error = redact_text(describe_error(outcome.error), runtime.secrets)
    return {
        "command": outcome.command,
        "status": outcome.status,
        "dryRun": outcome.dry_run,
        "startedAt": format_instant(outcome.started),
        "finishedAt": format_instant(outcome.finished or datetime.now(UTC)),
        "seconds": {"total": round(outcome.stats.seconds, 3)}
        | {k: round(v, 3) for k, v in outcome.durations.items()},
        "counts": outcome.stats.counts(),
        "error": error,
    }
