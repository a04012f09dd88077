"""The order the ERP answers records in, as the reader must compare them: by last update at the
precision the ERP wrote it, then by the key as the ERP writes it.

- An ERP may stamp finer than the millisecond TracOS keeps (S/4HANA: 7 digits). Two changes
  within one millisecond, the later one with the smaller key, are in the ERP's order by their
  full stamps and out of it by their milliseconds: the digits after the millisecond are read from
  the record's own text and compared too (and written back in the keyset filter).
- A key written as text (``WO-9``, ``WO-10``: a prefix and no width) is ordered as text by the
  ERP (``WO-10`` first), and a ``read.after`` filter compares it as text (``gt 'WO-9'``): keys
  are compared as the mapping writes them, numbers only when the ERP's keys are numbers. With a
  fixed width (``000004000123``) both orders agree.

A record read out of that order is a protocol error; ``ErpOrder.out_of_order`` words it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tracos_sync.mapping import RecordMapping

from .watermark import Watermark

# An ISO 8601 time with more than three fractional digits: the digits after the millisecond.
_FINER = re.compile(r"\d{2}:\d{2}:\d{2}[.,]\d{3}(\d+)")
_NANOSECOND_DIGITS = 6  # after the millisecond; finer digits than that are compared as text

Rank = tuple[datetime, int, str, Any]


def finer_digits(raw: Any) -> str:
    """The digits of a last-update value after its milliseconds (``"…00.1232000Z"``:
    ``"2000"``), ``""`` when it has none (or is not text)."""
    if not isinstance(raw, str):
        return ""
    found = _FINER.search(raw)
    return found.group(1) if found else ""


class ErpOrder:
    """``rank(...)``: what sorts as the ERP sorts a record or a watermark."""

    def __init__(self, mapping: RecordMapping) -> None:
        self._mapping = mapping
        self._text_keys = isinstance(self._written_key(1), str)

    def rank(self, stamp: datetime, number: int, finer: str) -> Rank:
        if not finer:  # the common case: milliseconds at most
            return stamp, 0, "", self.key(number)
        digits = finer.rstrip("0")
        head = int(digits[:_NANOSECOND_DIGITS].ljust(_NANOSECOND_DIGITS, "0") or 0)
        return stamp, head, digits[_NANOSECOND_DIGITS:], self.key(number)

    def of(self, mark: Watermark) -> Rank:
        return self.rank(mark.since, mark.after, mark.finer)

    def key(self, number: int) -> Any:
        """The key as the ERP orders it; 0 (nothing read at that instant yet) first."""
        if not self._text_keys:
            return number
        if number == 0:
            return ""
        written = self._written_key(number)
        return written if isinstance(written, str) else str(number)

    def out_of_order(self, where: str, item: Any, number: int, query: Mapping[str, str]) -> str:
        """The message for ``item`` (key ``number``, at ``where``) read before the record read
        last, in the ERP's order; the advice depends on whether ``query`` (``read.query``) asks
        for an order already."""
        mapping = self._mapping
        said = (
            f"{where} ({mapping.number_path} {self.key(number)!r}, "
            f"{mapping.updated_path} {mapping.updated_raw(item)!r}) is out of order: the API must "
            "answer records ordered by last update, then key"
        )
        asked = {n: v for n, v in query.items() if n.lower() == "$orderby"}
        if not asked:
            return f"{said} (set read.query's $orderby)"
        (name, value), *_ = asked.items()
        return (
            f"{said}, and read.query's {name} = {value!r} asks for an order that the API does "
            "not keep on these records: check that it names the mapping's last-update field "
            "then its key, and that the API sorts them as written (text keys as text)"
        )

    def _written_key(self, number: int) -> Any:
        try:
            return self._mapping.client_key(number)
        except ValueError:
            return None
