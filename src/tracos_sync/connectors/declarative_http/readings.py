"""What a record read is to the echo guard (``Echoes.read``: our echo, a version applied read
again, or a change), and the last update a change to a record we wrote is handed on with."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from tracos_sync.domain.dates import normalise
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import WorkOrder
from tracos_sync.mapping import RecordMapping

from .echoes import Echoes, Reading, content_hash
from .selector import field_at

log = structlog.get_logger("tracos_sync.http")

# The least step of a last update (TracOS keeps milliseconds).
_STEP = timedelta(milliseconds=1)


class Readings:
    """Each record read, told to the guard (none: every record is a change)."""

    def __init__(
        self, echoes: Echoes | None, mapping: RecordMapping, version_field: str | None
    ) -> None:
        self._echoes = echoes
        self._mapping = mapping
        self._version_field = version_field  # where a record read holds its version
        self._told = False  # a record without it said once a run

    def of(self, order: WorkOrder, item: Any, *, ahead: bool = False) -> Reading:
        """What ``item`` (decoded: ``order``) is; either way the guard learns its version.
        ``ahead``: it is dated after the moment its page was asked for (read again next pass:
        without versions, its content is what ``Echoes.applied`` remembers)."""
        if self._echoes is None:
            return Reading()
        version = None
        if self._version_field is not None:
            found = field_at(item, self._version_field)
            version = None if found is None else str(found)
            if version is None and not self._told:
                self._told = True
                log.warning(
                    "inbound.version_missing",
                    field=self._version_field,
                    number=order.number,
                    detail="a record read without write.version.field: the next update of it "
                    "goes on the version its write answered, or without If-Match",
                )
        key = self.key(order)
        # The hash only where it is compared (the ERP's own records, the common case, cost the
        # guard nothing but its version): a key we wrote to; without versions, a key with a
        # version applied remembered, or a record to remember.
        content = ""  # not compared, or the mapping cannot write it: not ours
        if self._echoes.wrote_to(key) or (version is None and (ahead or self._echoes.knows(key))):
            with contextlib.suppress(RecordRejected):
                content = content_hash(self._mapping.encode, order)
        return self._echoes.read(key, content, version)

    def key(self, order: WorkOrder) -> str:
        """The record's key as the ERP writes it."""
        return str(self._mapping.client_key(order.number))


def after_our_write(order: WorkOrder, written: datetime) -> WorkOrder:
    """``order``, an ERP change made after we wrote TracOS's copy last updated ``written``: its
    last update is at least just after that copy's (an ERP clock behind ours stamps it earlier,
    and TracOS would refuse it as stale). A TracOS edit made since our write is later still, and
    then the ERP's own stamp decides against it, as for any record."""
    if order.updated_at > written:
        return order
    return replace(order, updated_at=normalise(written + _STEP))
