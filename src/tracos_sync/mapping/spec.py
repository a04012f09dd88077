"""The mapping description as written (a TOML table or a dict): its shape and types only. What
makes a description consistent (every TracOS status reachable both ways, no client path used
twice, dates that parse back) is checked when it is compiled (``compile/``), where every
problem is collected with its key path."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tracos_sync.domain.model import Status

# Names separated by dots, none empty: ``summary``, ``details.title``.
ClientPath = Annotated[str, StringConstraints(pattern=r"^[^.]+(\.[^.]+)*$")]
# Written as its value ("completed"): strict mode would take only the enum's instances.
TracosStatus = Annotated[Status, Field(strict=False)]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class FieldSpec(BaseModel):
    """One TracOS field's place in the client record: ``"summary"`` or
    ``{ path = "summary", required = false }``."""

    model_config = _STRICT

    path: ClientPath
    required: bool | None = None  # None: the field's own default (see docs/mappings.md)

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class FieldsSpec(BaseModel):
    model_config = _STRICT

    number: FieldSpec
    title: FieldSpec
    created_at: FieldSpec
    updated_at: FieldSpec
    deleted: FieldSpec | None = None
    deleted_at: FieldSpec | None = None


class FlagStatusSpec(BaseModel):
    """Status as boolean flags: at most one true; none true means ``none``."""

    model_config = _STRICT

    flags: dict[ClientPath, TracosStatus] = Field(min_length=1)
    none: TracosStatus = Status.IN_PROGRESS
    optional: list[ClientPath] = []  # flags that may be absent (absent: false)


class FieldStatusSpec(BaseModel):
    """Status as one client field with a table of values."""

    model_config = _STRICT

    field: ClientPath
    values: dict[str, TracosStatus] = Field(min_length=1)
    # For a TracOS status that several client values map to: the one written outbound.
    write: dict[TracosStatus, str] = {}


class MappingSpec(BaseModel):
    """The whole description. ``status`` is validated by the model its keys select
    (``flags`` or ``field``), so that an error names the keys of that form only."""

    model_config = _STRICT

    fields: FieldsSpec
    status: dict[str, Any]
    date_format: str = "iso8601"
    timezone: str | None = None
    # Client path -> value; nested tables (TOML's dotted keys) are paths too.
    constants: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    order: list[ClientPath] = []
