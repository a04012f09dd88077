"""The forms a description may give the status in, each chosen by its key (``flags``,
``field``): the model that checks its shape, the checks of its consistency, and the codec it
compiles to. A new form is one more entry in ``FORMS``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from tracos_sync.domain.model import Status

from ..said import json_text
from ..spec import FieldStatusSpec, FlagStatusSpec
from ..status import FieldStatus, FlagStatus, StatusCodec
from .checks import Checks, Errors
from .field_kinds import flag_codec
from .shape import validate

Spec = TypeVar("Spec", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StatusForm(Generic[Spec]):
    model: type[Spec]
    said_as: str  # how the form is named when none is given
    compile: Callable[[Spec, Checks], StatusCodec | None]  # None: problems were added
    read_paths: Callable[[Spec], list[str]]  # the client paths it reads (a default may fill)


@dataclass(frozen=True, slots=True)
class ChosenStatus(Generic[Spec]):
    """A form and the description's status, checked by the form's model."""

    form: StatusForm[Spec]
    spec: Spec

    def compile(self, checks: Checks) -> StatusCodec | None:
        return self.form.compile(self.spec, checks)

    def read_paths(self) -> list[str]:
        return self.form.read_paths(self.spec)


def choose(raw: Any, errors: Errors) -> ChosenStatus[Any] | None:
    """The form ``raw`` (the description's status table) is in, or None with the problem
    added (a status that is not a table was already refused by the description's model)."""
    if not isinstance(raw, Mapping):
        return None
    given = [key for key in FORMS if key in raw]
    if len(given) > 1:
        errors.append(("status", f"give either {' or '.join(given)}, not both"))
        return None
    if not given:
        forms = " or ".join(f"{key} ({form.said_as})" for key, form in FORMS.items())
        errors.append(("status", f"give either {forms}"))
        return None
    form = FORMS[given[0]]
    spec = validate(form.model, dict(raw), "status", errors)
    return None if spec is None else ChosenStatus(form, spec)


def _flags(spec: FlagStatusSpec, checks: Checks) -> StatusCodec | None:
    before = checks.found()
    owner: dict[Status, str] = {}
    for path, status in spec.flags.items():
        checks.use(path, f"status.flags.{path}")
        if status in owner:
            checks.fail(
                f"status.flags.{path}",
                f"TracOS status {status.value} already has the flag {owner[status]!r} "
                "(each status has one flag: the one set outbound)",
            )
        owner.setdefault(status, path)
    lacking = [s.value for s in Status if s not in owner and s is not spec.none]
    if lacking:
        checks.fail(
            "status.flags",
            f"no flag for TracOS status {', '.join(lacking)} (each status needs one, "
            f"except the one no flag means: status.none = {spec.none.value})",
        )
    for path in spec.optional:
        if path not in spec.flags:
            checks.fail("status.optional", f"{path!r} is not one of status.flags")
    encoding = flag_codec(spec.true, spec.false, "status.true", checks)
    if checks.found() > before:
        return None
    return FlagStatus(dict(spec.flags), spec.none, set(spec.optional), encoding)


def typed(text: str, kind: str) -> Any:
    """A TOML key (text) as the client's value of type ``kind``; ``ValueError`` unless the
    value written back is the same text (``"010"`` is not an integer's one form). Booleans
    are not a type of values: two values cannot name five statuses (flags can)."""
    if kind == "integer":
        value: Any = int(text) if text.lstrip("-").isdigit() else None
        if value is None or str(value) != text:
            raise ValueError(f"{text!r:.60} is not an integer as JSON writes it (such as '20')")
        return value
    return text


def _field(spec: FieldStatusSpec, checks: Checks) -> StatusCodec | None:
    before = checks.found()
    checks.use(spec.field, "status.field")
    table: dict[Any, Status] = {}
    for text, status in spec.values.items():
        try:
            table[typed(text, spec.type)] = status
        except ValueError as exc:
            checks.fail(f"status.values.{text}", f"{exc} (status.type = {spec.type!r})")
    by_status: dict[Status, list[str]] = {}
    for value, status in spec.values.items():
        by_status.setdefault(status, []).append(value)
    write: dict[Status, str] = {}
    for status in Status:
        values = by_status.get(status, [])
        chosen = _written(spec.write.get(status), spec.type)
        if chosen is _WRONG_TYPE:
            checks.fail(
                f"status.write.{status.value}",
                f"{json_text(spec.write[status])} is not a value of status.type = {spec.type!r}",
            )
        elif not values:
            checks.fail("status.values", f"no client value for TracOS status {status.value}")
        elif chosen is not None and chosen not in values:
            checks.fail(
                f"status.write.{status.value}",
                f"{chosen!r:.60} is not one of the values status.values maps to "
                f"{status.value} ({', '.join(map(repr, values))})",
            )
        elif chosen is None and len(values) > 1:
            checks.fail(
                f"status.write.{status.value}",
                f"several client values map to {status.value} "
                f"({', '.join(map(repr, values))}): say which one is written",
            )
        else:
            write[status] = chosen or values[0]
    if checks.found() > before:
        return None
    return FieldStatus(
        spec.field, table, {status: typed(text, spec.type) for status, text in write.items()}
    )


_WRONG_TYPE = "\x00wrong type"  # never a TOML key: a marker


def _written(value: str | int | None, kind: str) -> str | None:
    """A ``write`` value as the text of its ``values`` key (``40`` -> ``"40"`` with
    ``integer``); ``_WRONG_TYPE`` for a value of another type than the table's."""
    if value is None or isinstance(value, str):
        return value
    return str(value) if kind == "integer" else _WRONG_TYPE


FORMS: dict[str, StatusForm[Any]] = {
    "flags": StatusForm(FlagStatusSpec, "boolean fields", _flags, lambda spec: list(spec.flags)),
    "field": StatusForm(FieldStatusSpec, "one value", _field, lambda spec: [spec.field]),
}
