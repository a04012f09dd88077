"""Trying a mapping on sample files before it goes live (``tracos-sync mapping test``, and
``check`` with an integration's samples): each record of each sample read as inbound reads it
(the codec's split and the mapping's checks, so every form of input the codec knows comes for
free), with every problem, the TracOS work order it becomes, the record outbound would write
back, and each path where that differs from the sample."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracos_sync.domain.dates import format_instant
from tracos_sync.domain.errors import RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import HealthCheck
from tracos_sync.mapping.reasons import reason

from .codec import NotRecords, ParseError, RecordDecoder, parse_json

# A value shown in a difference is cut to this many characters.
SHOWN_CHARS = 80


class Absent:
    """A side of a difference where the path is not there at all (None is JSON null)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = Absent()


@dataclass(frozen=True, slots=True)
class Difference:
    """One path where the record written back is not the sample: either side may be absent."""

    path: str
    given: Any
    written: Any

    def describe(self) -> str:
        """``$.dates.updated: "01/05/2024 09:30:15" → "01/05/2024 09:30"``."""
        return f"{self.path}: {shown(self.given)} → {shown(self.written)}"


@dataclass(frozen=True, slots=True)
class RecordTrial:
    """One record of a sample through the mapping. ``record`` is its index in the sample (None:
    the sample as a whole was refused: not JSON, or no records). Refused: ``problems`` lists
    every one found. Accepted: the work order, the record written back (None when this format
    cannot write it: ``unwritable`` says why) and its differences from the sample."""

    sample: str
    record: int | None
    problems: tuple[Problem, ...] = ()
    order: WorkOrder | None = None
    written: dict[str, Any] | None = None
    differences: tuple[Difference, ...] = ()
    unwritable: tuple[Problem, ...] = ()

    @property
    def refused(self) -> bool:
        return self.order is None

    @property
    def where(self) -> str:
        """``batch.json record 2``, or the sample's name alone."""
        return self.sample if self.record is None else f"{self.sample} record {self.record}"


def try_samples(decoder: RecordDecoder, paths: Iterable[Path]) -> list[RecordTrial]:
    """Every record of every sample in ``paths``, in order; a sample that cannot be read is one
    refused trial saying why."""
    trials: list[RecordTrial] = []
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            problem = Problem("$", f"cannot read {path}: {exc.strerror or exc}")
            trials.append(RecordTrial(str(path), None, (problem,)))
            continue
        trials += try_sample(decoder, str(path), raw)
    return trials


def try_sample(decoder: RecordDecoder, sample: str, raw: bytes) -> list[RecordTrial]:
    """Every record of one sample's bytes through ``decoder``'s mapping, both ways."""
    try:
        items = decoder.records_of(parse_json(raw))
    except (ParseError, NotRecords) as exc:
        return [RecordTrial(sample, None, (Problem("$", reason(str(exc))),))]
    decoded = decoder.decode_items(enumerate(items))
    problems: dict[int | None, list[Problem]] = defaultdict(list)
    for problem in decoded.problems:
        problems[problem.record].append(Problem(problem.path, problem.reason))
    orders = dict(zip(decoded.positions, decoded.records, strict=True))
    trials = []
    for index, item in enumerate(items):
        order = orders.get(index)
        if order is None:
            trials.append(RecordTrial(sample, index, tuple(problems[index])))
            continue
        try:
            written = decoder.mapping.encode(order)
        except RecordRejected as exc:
            trials.append(RecordTrial(sample, index, order=order, unwritable=tuple(exc.problems)))
            continue
        found = tuple(differences(item, written))
        trials.append(RecordTrial(sample, index, (), order, written, found))
    return trials


def differences(given: Any, written: Any, path: str = "$") -> Iterator[Difference]:
    """Each path where ``written`` is not ``given``, objects compared key by key (their order
    aside), any other value whole and by its JSON text (``1`` is not ``1.0``, nor ``true``)."""
    if isinstance(given, dict) and isinstance(written, dict):
        for key, value in given.items():
            if key in written:
                yield from differences(value, written[key], f"{path}.{key}")
            else:
                yield Difference(f"{path}.{key}", value, ABSENT)
        for key, value in written.items():
            if key not in given:
                yield Difference(f"{path}.{key}", ABSENT, value)
    elif _text(given) != _text(written):
        yield Difference(path, given, written)


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def shown(value: Any) -> str:
    """A value as JSON, cut to ``SHOWN_CHARS``; ``(absent)`` for a path that is not there."""
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def order_fields(order: WorkOrder) -> dict[str, Any]:
    """A work order as TracOS would hold it, in the words of its JSON documents."""
    return {
        "number": order.number,
        "status": order.status.value,
        "title": order.title,
        "createdAt": format_instant(order.created_at),
        "updatedAt": format_instant(order.updated_at),
        "deleted": order.deleted,
        "deletedAt": None if order.deleted_at is None else format_instant(order.deleted_at),
    }


def sample_files(paths: Iterable[Path]) -> list[Path]:
    """The sample files ``paths`` name: a file as it is, a folder's ``*.json`` in name order."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.glob("*.json")) if path.is_dir() else [path]
    return found


@dataclass(frozen=True, slots=True)
class Samples:
    """An integration's sample files (``samples`` in the integrations file) and its mapping's
    decoder: what ``check`` tries."""

    folder: Path
    decoder: RecordDecoder


def sample_checks(samples: Samples) -> list[HealthCheck]:
    """``check``'s lines for the samples: one failure per refused record, naming the sample and
    the record with its first problem (and how many more); otherwise ok with the counts."""
    folder = samples.folder
    if not folder.is_dir():
        return [HealthCheck("samples", False, f"{folder} is not a folder")]
    paths = sample_files([folder])
    if not paths:
        return [HealthCheck("samples", False, f"{folder} holds no *.json sample")]
    trials = try_samples(samples.decoder, paths)
    refused = [trial for trial in trials if trial.refused]
    if not refused:
        detail = f"{counted(len(trials), 'record')} in {counted(len(paths), 'sample')} of {folder}"
        detail += " read by the mapping"
        return [HealthCheck("samples", True, detail)]
    checks = []
    for trial in refused:
        first, more = trial.problems[0], len(trial.problems) - 1
        also = f" (and {more} more: tracos-sync mapping test)" if more else ""
        checks.append(
            HealthCheck("samples", False, f"{trial.where}: {first.path}: {first.reason}{also}")
        )
    return checks


def counted(number: int, noun: str) -> str:
    """``1 record``, ``3 records``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"
