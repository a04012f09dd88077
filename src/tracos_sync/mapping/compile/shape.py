"""The description's shape and types, checked by its pydantic model (``spec.py``), each error
put at its key path in words a person writing TOML follows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from tracos_sync.domain.model import Status

from .checks import Errors

STATUSES = ", ".join(s.value for s in Status)

Model = TypeVar("Model", bound=BaseModel)


def validate(model: type[Model], raw: dict[str, Any], at: str, errors: Errors) -> Model | None:
    """``raw`` as ``model``, or None with its problems added to ``errors`` under ``at``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(part) for part in err["loc"] if part != "[key]"]
            if at == "" and loc == ["status"] and isinstance(raw.get("status"), Mapping):
                continue  # a table: checked by the model of its form
            errors.append((".".join([at, *loc] if at else loc), _message(model, loc, err)))
        return None


def _message(model: type[BaseModel], loc: list[str], err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _keys_of(model, loc[:-1])
        return "unknown key" + (f" (expected one of: {', '.join(known)})" if known else "")
    if kind == "model_type" and len(loc) == 2 and loc[0] == "fields":
        return 'expected a client path ("summary") or a table (path = "summary", required = ...)'
    if kind == "missing":
        return "required key is missing"
    if kind == "enum":
        return f"unknown TracOS status {err['input']!r:.60} (expected one of: {STATUSES})"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r:.60} is not a client path (names joined by dots, none empty)"
    return str(err["msg"])


def _keys_of(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The keys the table at ``loc`` may hold, to name them after a typo."""
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return []
        inner = [
            a
            for a in (get_args(field.annotation) or (field.annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if not inner:
            return []
        model = inner[0]
    return list(model.model_fields)
