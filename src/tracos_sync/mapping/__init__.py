"""Declarative record mappings: a client's work-order format described once (field names and
nesting, status vocabulary, date format and time zone, constants, defaults), compiled into a
two-way ``RecordMapping``. Pure: imports only ``tracos_sync.domain`` and libraries. The
description format is documented in docs/reference/mapping.md."""

from __future__ import annotations

from .builtin import BUILTIN, builtin_mapping
from .load import load_mapping
from .record_mapping import RecordMapping

__all__ = ["BUILTIN", "RecordMapping", "builtin_mapping", "load_mapping"]
