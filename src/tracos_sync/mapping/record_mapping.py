"""A compiled mapping: one client record format, read into TracOS work orders and written back.

Built once from a checked description (``compile``), immutable, then used for every record.
Reading is layered as the wire contract always was: the generated JSON Schema (compiled with
fastjsonschema: the fast gate; jsonschema lists every problem of a record that failed it), then
the rules the schema cannot say (strict integers, text every system can carry, one status, dates
that exist; ``inbound.py``). Every problem is located by its JSON path in the client's own field
names. Writing is ``outbound.py``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import fastjsonschema

from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.text import text_problem

from .inbound import Inbound
from .outbound import Outbound
from .parts import Parts
from .paths import MISSING, copy_json, json_path
from .reasons import reason

if TYPE_CHECKING:
    from jsonschema import Draft7Validator
from .said import json_text


class RecordMapping:
    """One client record format, both ways. Immutable; build it once (``load_mapping``)."""

    __slots__ = ("_check", "_full_check", "_in", "_out", "_parts", "_schema")

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._schema = parts.schema
        self._check: Callable[[Any], Any] = fastjsonschema.compile(parts.schema)
        # The validator that lists every problem is built at the first refused record: jsonschema
        # costs a command's start-up tens of milliseconds, and most runs refuse nothing.
        self._full_check: Draft7Validator | None = None
        self._in = Inbound(parts)
        self._out = Outbound(parts)

    # -- the client's field names, for messages and for the connectors' own checks

    @property
    def number_path(self) -> str:
        """JSON path of the work-order number: ``$.orderNo``."""
        return self._parts.number.json_path

    @property
    def updated_path(self) -> str:
        """JSON path of the last-update instant: ``$.lastUpdateDate``."""
        return self._parts.updated_at.json_path

    @property
    def records_path(self) -> tuple[str, ...] | None:
        """Where a file's records are (``("d", "results")``), or None: the file is a record
        or an array of them."""
        return self._parts.records

    def enclose(self, records: list[dict[str, Any]]) -> Any:
        """A file's document holding ``records`` as this customer's files hold them: in the
        envelope at ``records_path`` (``{"d": {"results": [...]}}``), else one record alone or
        an array of them."""
        keys = self._parts.records
        if keys is None:
            return records[0] if len(records) == 1 else records
        document: Any = records
        for key in reversed(keys):
            document = {key: document}
        return document

    def outbound_document(self, record: dict[str, Any]) -> Any:
        """An outbound file's document for one encoded record: the record, or the record in the
        customer's envelope when the description says ``envelope_outbound``."""
        return self.enclose([record]) if self._parts.envelope_outbound else record

    def outbound_record(self, document: Any) -> Any:
        """The record an outbound file's document holds, whether it was written alone or in the
        envelope (``outbound_document`` undone): a file written before ``envelope_outbound`` was
        switched is still read, never taken for someone else's and replaced. None when it holds
        no single record."""
        keys = self._parts.records
        if keys is not None and isinstance(document, dict):
            inner: Any = document
            for key in keys:
                inner = inner.get(key) if isinstance(inner, dict) else None
            if isinstance(inner, list):
                return inner[0] if len(inner) == 1 else None
        return document

    def json_schema(self) -> dict[str, Any]:
        """The client record's JSON Schema (a copy: the mapping stays as built)."""
        schema: dict[str, Any] = copy_json(self._schema)
        return schema

    # -- inbound

    def decode(self, item: Any, unknown_fields: set[str] | None = None) -> WorkOrder:
        """Client record -> work order. Raises ``RecordRejected`` listing every problem; adds the
        paths of fields this mapping does not know to ``unknown_fields`` (for a debug line)."""
        try:
            self._check(item)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise RecordRejected(self._all_problems(item, exc)) from None
        inbound = self._in
        if inbound.has_defaults:
            item = inbound.with_defaults(item)
        try:
            number = self._parts.key.decode(inbound.number(item))
        except ValueError as exc:
            # The other fields' problems too: a refused record lists every one.
            raise RecordRejected(
                [
                    Problem(self.number_path, reason(str(exc))),
                    *inbound.problems(item, {self.number_path}),
                ]
            ) from None
        title = inbound.title(item)
        problem = text_problem(title)
        if problem is not None:
            title_path = self._parts.title.json_path
            raise RecordRejected(
                [Problem(title_path, problem), *inbound.problems(item, {title_path})]
            )
        if unknown_fields is not None:
            inbound.collect_unknown(item, unknown_fields)
        return inbound.translate(item, number, title)

    def _all_problems(
        self, item: Any, failed: fastjsonschema.JsonSchemaValueException
    ) -> list[Problem]:
        """Every problem of a record the schema refused: the schema's, then each field's own
        rules (dates, status, key) for the fields the schema found nothing wrong with."""
        problems = self._schema_problems(item, failed)
        if isinstance(item, dict):
            if self._in.has_defaults:
                item = self._in.with_defaults(item)
            problems += self._in.problems(item, {p.path for p in problems})
        return problems

    def key_of(self, item: Any) -> tuple[datetime, int] | None:
        """(last update, number) of a raw record, leniently: None when either is unreadable.
        For records that may not decode (a refused one still says what the client holds)."""
        if not isinstance(item, dict):
            return None
        number = self._parts.key.lenient(self._in.number(item))
        if number is None:
            return None
        stamp = self.updated_of(item)
        return None if stamp is None else (stamp, number)

    def client_key(self, number: int) -> Any:
        """``number`` as the client writes its key (``"000004000123"``, ``4000123``): what an
        API's query asks for. ``ValueError`` for a number the format cannot write."""
        return self._parts.key.encode(number)

    def client_updated(self, stamp: datetime) -> list[Any]:
        """``stamp`` as the client writes its last update: one value per field (two for a date
        and a time apart). ``InvalidDate`` for an instant the format cannot write."""
        return self._in.updated.format(stamp)

    def updated_of(self, item: Any) -> datetime | None:
        """The last-update instant of a raw record, or None when it cannot be read."""
        if not isinstance(item, dict):
            return None
        updated = self._in.updated
        value = updated.read(item)
        return None if value is MISSING else updated.lenient(value)

    def updated_raw(self, item: Any) -> Any:
        """The last-update value of a raw record as the client wrote it (None when absent): at
        the client's own precision, which may be finer than the instant read from it."""
        if not isinstance(item, dict):
            return None
        value = self._in.updated.read(item)
        return None if value is MISSING else value

    def _key_problem(self, raw: Any) -> str | None:
        try:
            self._parts.key.decode(raw)
        except ValueError as exc:
            return str(exc)
        return None

    def _schema_problems(
        self, item: Any, failed: fastjsonschema.JsonSchemaValueException
    ) -> list[Problem]:
        """The schema's problems, each at its path, values in JSON's spelling, one a cause (a
        value outside an enum is not also said to be of the wrong type)."""
        if self._full_check is None:
            from jsonschema import Draft7Validator

            self._full_check = Draft7Validator(self._schema)
        errors = list(self._full_check.iter_errors(item))
        enums = {tuple(err.absolute_path) for err in errors if err.validator == "enum"}
        problems = []
        for err in errors:
            parts = list(err.absolute_path)
            if err.validator == "type" and tuple(parts) in enums:
                continue
            message = err.message
            if err.validator == "required":
                # Point at the missing field itself, not at its parent object.
                parts.append(err.message.split("'")[1])
            elif err.validator == "pattern" and json_path(parts) == self.number_path:
                # The key's own words: "4000130" is not a number written like "000000000123".
                message = self._key_problem(err.instance) or message
            elif err.validator == "enum":
                # In JSON's spelling: 20 is not one of "10", "20" (not ['10', '20']).
                allowed = ", ".join(json.dumps(v) for v in err.validator_value)
                message = f"{json_text(err.instance)} is not one of {allowed}"
            elif message.startswith(repr(err.instance)):
                message = json_text(err.instance) + message[len(repr(err.instance)) :]
            problems.append(Problem(json_path(parts), reason(message)))
        if not problems:  # the two validators disagree: a defect, still said at its path
            problems.append(Problem(json_path(list(failed.path[1:])), reason(failed.message)))
        return problems

    # -- outbound

    def encode(self, order: WorkOrder) -> dict[str, Any]:
        """Work order -> the client record, keys in the mapping's order. Raises
        ``RecordRejected`` for an order this format cannot write (a date whose local time falls
        outside years 1-9999 in the mapping's zone): the sinks refuse that order alone."""
        return self._out.encode(order)
