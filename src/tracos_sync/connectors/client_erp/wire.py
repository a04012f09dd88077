"""The client ERP's work order exactly as it travels (the built-in format), and its JSON Schema.

The connectors read and write records through a mapping (``tracos_sync.mapping``); this strict
model is what read them before, kept with ``translate.py`` as the built-in mapping's test oracle.
``workorder.schema.json`` is generated from the built-in mapping (a test keeps them equal)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_FILE = "workorder.schema.json"


class ClientWorkOrder(BaseModel):
    """The typed view of a record that already passed the JSON Schema, which is the one statement
    of the wire contract's rules (bounds, lengths, which fields are required); this model only
    names and types the fields (a test keeps the two in step). Strict: no numbers as strings, no
    booleans as numbers. Unknown fields are kept aside in ``model_extra`` (for a debug log line)
    and never reach TracOS."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True, populate_by_name=True)

    order_no: int = Field(alias="orderNo")
    is_active: bool | None = Field(default=None, alias="isActive")
    is_canceled: bool = Field(alias="isCanceled")
    is_done: bool = Field(alias="isDone")
    is_on_hold: bool = Field(alias="isOnHold")
    is_pending: bool = Field(alias="isPending")
    is_deleted: bool = Field(alias="isDeleted")
    is_synced: bool | None = Field(default=None, alias="isSynced")
    summary: str
    creation_date: str = Field(alias="creationDate")
    last_update_date: str = Field(alias="lastUpdateDate")
    deleted_date: str | None = Field(default=None, alias="deletedDate")


@cache
def json_schema() -> dict[str, Any]:
    """The wire format's JSON Schema (the file shipped beside this module)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema
