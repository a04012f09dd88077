"""The mapping description as written (a TOML table or a dict): its shape and types only. What
makes a description consistent (every TracOS status reachable both ways, no client path used
twice, dates that parse back) is checked when it is compiled (``compile/``), where every
problem is collected with its key path."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from tracos_sync.domain.model import Status

# Names separated by dots, none empty: ``summary``, ``details.title``.
ClientPath = Annotated[str, StringConstraints(pattern=r"^[^.]+(\.[^.]+)*$")]
# Written as its value ("completed"): strict mode would take only the enum's instances.
TracosStatus = Annotated[Status, Field(strict=False)]

# A value a client writes for true or false: a JSON string, integer or boolean.
FlagValue = str | bool | int

# Each field's docstring is its description: the mapping reference is generated from it.
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)


class FieldSpec(BaseModel):
    """One TracOS field's place in the client record: ``"summary"`` or
    ``{ path = "summary", required = false }``."""

    model_config = _STRICT

    path: ClientPath
    """The client path, dotted for nesting (`details.title`)."""
    required: bool | None = None
    """Whether a record must hold it; only `deleted` (default true) and `deleted_at` (default false)
    may say so, the other four are always required."""
    prefix: str | None = None
    """`number` only: the key is a string, this text then the digits (`WO-` for `"WO-000123"`)."""
    width: int | None = None
    """`number` only: the key is a string of exactly this many digits, zero-padded (1-19)."""
    true: FlagValue | None = None
    """`deleted` only: the client's value for true (`"X"`, `"Y"`, `1`; default `true`)."""
    false: FlagValue | None = None
    """`deleted` only: the client's value for false (`""`, `"N"`, `0`; default `false`)."""
    format: str | None = None
    """Dates only: this field's own date format (overrides `mapping.date_format`)."""
    time: ClientPath | None = None
    """Dates only: the client path of the time, when date and time are two fields (needs
    `time_format`; `format` is then the date's pattern)."""
    time_format: str | None = None
    """Dates only, with `time`: the time's `strftime` pattern (`%H%M%S`)."""
    no_date: str | int | None = None
    """Dates only: the client's value for no date (SAP's `"00000000"`), read as null and
    written where TracOS has none; refused if it reads as a date."""
    no_time: str | None = None
    """Dates only, with `time` and `no_date`: the time's value for no date (SAP's `"000000"`)."""

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class FieldsSpec(BaseModel):
    model_config = _STRICT

    number: FieldSpec
    """The business key: a JSON integer from 1 to 2^63-1, or with `prefix`/`width` a string
    (no default)."""
    title: FieldSpec
    """The work order's title (a string)."""
    created_at: FieldSpec
    """Creation date, set in TracOS on insert only."""
    updated_at: FieldSpec
    """Last update: decides who is newer (no default)."""
    deleted: FieldSpec | None = None
    """Deleted or not (a boolean, or `true`/`false` values); absent from the description: nothing
    read is deleted, no deletion written."""
    deleted_at: FieldSpec | None = None
    """Deletion date (needs `deleted`); a deleted record without one was deleted at its last update.
    """


class FlagStatusSpec(BaseModel):
    """Status as boolean flags: at most one true; none true means ``none``."""

    model_config = _STRICT

    flags: dict[ClientPath, TracosStatus] = Field(min_length=1)
    """One boolean client field per TracOS status; more than one true refuses the record as
    ambiguous."""
    none: TracosStatus = Status.IN_PROGRESS
    """The status when no flag is true."""
    optional: list[ClientPath] = []
    """Flags that may be absent (absent: false); the others are required."""
    true: FlagValue = True
    """The client's value of a flag that is set (`"X"`, `"Y"`, `1`)."""
    false: FlagValue = False
    """The client's value of a flag that is not set (`""`, `"N"`, `0`)."""


class FieldStatusSpec(BaseModel):
    """Status as one client field with a table of values."""

    model_config = _STRICT

    field: ClientPath
    """The client field that holds the status."""
    values: dict[str, TracosStatus] = Field(min_length=1)
    """Client value -> TracOS status; every TracOS status needs a value."""
    type: Literal["string", "integer"] = "string"
    """The JSON type of the client's values (TOML keys are text: `"20"` means the integer `20`
    with `integer`)."""
    write: dict[TracosStatus, str | int] = {}
    """For a TracOS status that several client values map to: the one written outbound (of
    the values' `type`: `completed = 40` with `integer`)."""


class MappingSpec(BaseModel):
    """The whole description. ``status`` is validated by the model its keys select
    (``flags`` or ``field``), so that an error names the keys of that form only."""

    model_config = _STRICT

    fields: FieldsSpec
    """Each TracOS field -> its client path (`number`, `title`, `created_at`, `updated_at`,
    `deleted`, `deleted_at`)."""
    status: dict[str, Any]
    """The status vocabulary: `flags` (+ `none`, `optional`), or `field` + `values` (+ `write`)."""
    date_format: str = "iso8601"
    """How the record's dates are written: `iso8601`, `epoch_ms`, `epoch_s`, `odata_v2` or a
    `strftime` pattern (a field's `format` overrides it)."""
    timezone: str | None = None
    """IANA zone of client times without an offset; unset: CLIENT_TIMEZONE, else UTC."""
    constants: dict[str, Any] = {}
    """Client path -> value, written on every outbound record (nested tables are paths too)."""
    defaults: dict[str, Any] = {}
    """Client path -> value read when the client's record lacks it."""
    order: list[ClientPath] = []
    """Client paths in the order they are written."""
    records: ClientPath | None = None
    """Path of the array of records in a file that holds several (`d.results`, `value`); unset:
    a file holds one record or an array of them."""
    envelope_outbound: bool = False
    """Write each outbound record inside the `records` envelope (`{"value": [record]}`), as the
    customer's own files are (needs `records`); off: one record alone per file."""
