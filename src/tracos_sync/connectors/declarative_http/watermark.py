"""The watermark of an HTTP reader, and what a page hands on to be completed.

The watermark is a key (last update, number) as the mapping reads them, with the digits of the
last update finer than a millisecond as the ERP wrote them (S/4HANA writes 7): every record at or
before it was applied. How keys compare is the ERP's order, not the numbers' (``order.ErpOrder``).

``PageHandle`` is what ``complete`` needs of a page (its raw records, those
refused while decoding, the watermark to store once it is applied); ``refuse_record`` records a
refusal once per content in a pass.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.model import Problem
from tracos_sync.domain.ports import InboundUnit

log = structlog.get_logger("tracos_sync.http")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Watermark:
    """Everything up to the key (``since``, ``after``) was read. Not ordered here: the ERP's
    order of keys is the reader's to apply (``order.ErpOrder``)."""

    since: datetime = EPOCH  # to the millisecond, as TracOS stores instants
    after: int = 0  # 0: nothing at ``since`` was read yet
    finer: str = ""  # the digits of ``since`` after its milliseconds, as the ERP wrote them

    @property
    def text(self) -> str:
        return with_finer(format_instant(self.since), self.finer)


_MILLISECONDS = re.compile(r"(\d{2}:\d{2}:\d{2}[.,]\d{3})(?!\d)")


def with_finer(written: str, finer: str) -> str:
    """``written`` (an instant written to the millisecond) with the ERP's finer digits after
    its milliseconds (``….123Z`` and ``2000``: ``….1232000Z``), so that a filter compares at the
    ERP's precision; as it was when it shows no milliseconds to extend."""
    if not finer:
        return written
    return _MILLISECONDS.sub(lambda m: m.group(1) + finer, written, count=1)


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
    # Of each record handed on, by its index in the page: its key as the ERP writes it, what the
    # echo guard remembers of it once applied (``Reading.applied_as``), its last update. Only
    # records dated after the moment their page was asked for: the watermark stays before them.
    applied: dict[int, tuple[str, str, datetime]] = field(default_factory=dict)
    # Of a unit of records refused before and read now (``refused_again``): their keys.
    retaken: dict[int, str] = field(default_factory=dict)


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


def last_held(held: InboundUnit, whole: bool, mark: Watermark, repeats: int) -> InboundUnit:
    """The last page of a pass that is not keyset-safe: it carries the pass's mark only when
    the pass read every page and no key twice."""
    handle = held.handle
    assert isinstance(handle, PageHandle)
    if whole and not repeats:
        handle.mark = mark
    elif repeats:
        log.warning(
            "inbound.rows_shifted",
            repeats=repeats,
            detail="records changed while the pass paged (keys read twice): the watermark "
            "stays, the next pass reads from it again (keyset paging does not have this problem)",
        )
    return held
