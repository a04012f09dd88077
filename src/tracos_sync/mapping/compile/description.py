"""``compile_mapping``: a description -> a ``RecordMapping``, or a ``ConfigurationError``
naming every problem found, each with its key path (``mapping.status.values.DONE: ...``).

The description's shape and types are pydantic's (``spec.py``, ``shape.py``); what makes it
consistent is checked by the step that resolves each part (``fields.py``, ``status_forms.py``,
``dates.py``, ``schemas.py``), where each problem can be put at the key that causes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracos_sync.domain.errors import ConfigurationError

from ..instants import DateTimePair
from ..parts import Parts
from ..paths import split
from ..record_mapping import RecordMapping
from ..spec import MappingSpec
from .checks import Checks, Errors, Invalid
from .dates import resolve_dates
from .field_kinds import field_kinds
from .fields import constants, defaults, described, field_slots, output_order
from .schemas import check_defaults, client_record_schema, schema_leaves
from .shape import validate
from .status_forms import choose


def compile_mapping(
    description: Mapping[str, Any], *, where: str, default_timezone: str = "UTC"
) -> RecordMapping:
    """The mapping a description states. Raises ``ConfigurationError`` starting with ``where``
    and listing every problem."""
    try:
        parts = _parts(description, default_timezone)
    except Invalid as exc:
        listed = "; ".join(
            f"mapping{'.' if key else ''}{key}: {message}" for key, message in exc.errors
        )
        raise ConfigurationError(f"{where}: {listed}") from None
    try:
        return RecordMapping(parts)
    except Exception as exc:  # whatever the schema compilers raise: never a traceback
        raise ConfigurationError(
            f"{where}: mapping: its record schema cannot be compiled "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _parts(description: Mapping[str, Any], default_timezone: str) -> Parts:
    """Every part resolved, in the description's order (which is the default output order),
    every problem collected before any is raised."""
    if not isinstance(description, Mapping):
        raise Invalid([("", f"expected a table, got {type(description).__name__}")])
    errors: Errors = []
    spec = validate(MappingSpec, dict(description), "", errors)
    chosen = choose(description.get("status"), errors)
    if spec is None:
        raise Invalid(errors)
    checks = Checks(errors)
    dates, zone = resolve_dates(spec.timezone, spec.date_format, default_timezone, checks)
    slots = field_slots(spec.fields, checks)
    kinds = field_kinds(described(spec.fields), dates, zone, checks)
    # A status that cannot be read hides none of the other parts' problems.
    status = chosen.compile(checks) if chosen is not None else None
    fixed = constants(spec.constants, checks)
    if chosen is None:  # defaults and order may name the status's paths: unknown here
        raise Invalid(errors)
    readable = {slot.path: name for name, slot in slots.items()}
    for name, instant in (kinds.instants if kinds else {}).items():
        readable.update(dict.fromkeys(instant.paths(), name))
    readable.update(dict.fromkeys(chosen.read_paths(), "status"))
    filled = defaults(spec.defaults, readable, checks)
    pairs = kinds.instants.values() if kinds else ()
    times = {i.time_path: i.path for i in pairs if isinstance(i, DateTimePair)}
    order = output_order(spec.order, checks, times)
    if spec.envelope_outbound and spec.records is None:
        checks.fail("envelope_outbound", "needs records (the path of the envelope's array)")
    checks.stop_if_any()
    assert status is not None  # None comes with a problem
    assert kinds is not None
    leaves = schema_leaves(slots, kinds, status, dates, fixed, defaults=filled)
    check_defaults(leaves, kinds, filled, checks)
    checks.stop_if_any()
    return Parts(
        number=slots["number"],
        title=slots["title"],
        created_at=slots["created_at"],
        updated_at=slots["updated_at"],
        deleted=slots.get("deleted"),
        deleted_at=slots.get("deleted_at"),
        status=status,
        dates=dates,
        key=kinds.key,
        deleted_flag=kinds.deleted,
        instants=kinds.instants,
        records=None if spec.records is None else split(spec.records),
        envelope_outbound=spec.envelope_outbound,
        constants=fixed,
        defaults=filled,
        order=order,
        schema=client_record_schema(leaves, dates, order),
    )
