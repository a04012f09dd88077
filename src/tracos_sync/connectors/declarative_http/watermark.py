"""The watermark of an HTTP reader, and what a page hands on to be completed.

The watermark is a key (last update, number) as the mapping reads them: every record at or before
it was applied. ``PageHandle`` is what ``complete`` needs of a page (its raw records, those
refused while decoding, the watermark to store once it is applied); ``refuse_record`` records a
refusal once per content in a pass.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=True)
class Watermark:
    """Everything up to the key (``since``, ``after``) was read."""

    since: datetime = EPOCH
    after: int = 0  # 0: nothing at ``since`` was read yet

    @property
    def text(self) -> str:
        return format_instant(self.since)

    def passes(self, stamp: datetime, number: int) -> bool:
        """The record keyed (``stamp``, ``number``) is at or before the watermark."""
        return (stamp, number) <= (self.since, self.after)


def fingerprint(payload: Any) -> str:
    """Identity of a payload: the same record sent again is the same refusal."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


@dataclass(slots=True)
class PageHandle:
    """What ``complete`` needs of a page: its raw records, and those refused while decoding."""

    raw: list[Any] = field(default_factory=list)
    refused: dict[int, Any] = field(default_factory=dict)
    mark: Watermark = field(default_factory=Watermark)  # to store once the page is applied


def refuse_record(
    unit: InboundUnit, index: int, item: Any, problems: list[Problem], refused: set[str]
) -> None:
    """Record ``item`` (at ``index`` of ``unit``'s page) as refused with ``problems``, once per
    content in ``refused`` (a record refused once in a pass is not reported again)."""
    key = fingerprint(item)
    if key in refused:
        return
    refused.add(key)
    unit.rejected_records += 1
    unit.problems += [Problem(p.path, p.reason, index) for p in problems]
    handle = unit.handle
    assert isinstance(handle, PageHandle)
    handle.refused[index] = item
