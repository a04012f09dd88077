"""A compiled description (``Parts``): what ``compile`` hands to ``RecordMapping``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dates import DateFormat
from .flags import FlagCodec
from .instants import Instant
from .keys import KeyCodec
from .paths import Keys, json_path, split
from .status import StatusCodec


@dataclass(frozen=True, slots=True)
class Slot:
    """Where one TracOS field sits in the client record."""

    path: str  # dotted client path
    required: bool

    @property
    def keys(self) -> Keys:
        return split(self.path)

    @property
    def json_path(self) -> str:
        return json_path(self.keys)


@dataclass(frozen=True, slots=True)
class Parts:
    """A description, checked and resolved."""

    number: Slot
    title: Slot
    created_at: Slot
    updated_at: Slot
    deleted: Slot | None
    deleted_at: Slot | None
    status: StatusCodec
    dates: DateFormat  # the mapping's own (a date field may have its own: ``instants``)
    key: KeyCodec
    deleted_flag: FlagCodec | None
    instants: dict[str, Instant]  # created_at, updated_at, deleted_at (when described)
    records: Keys | None  # where a file's records are (``d.results``); None: the file
    envelope_outbound: bool  # each outbound record written inside the envelope at ``records``
    constants: dict[str, Any]
    defaults: dict[str, Any]
    order: list[str]  # every client path written, in output order
    schema: dict[str, Any]
