"""The customer side of a sync: where client work orders come from (``ClientSource``, in
``InboundUnit`` values) and where TracOS work orders go (``ClientSink``, reporting a
``Delivery``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..errors import FatalError
from ..model import Problem, WorkOrder


@dataclass(slots=True)
class InboundUnit:
    """One unit of client input (a file, an API page) and what decoding it produced.

    ``records`` are the valid work orders in input order; ``problems`` list every refusal.
    ``rejected_records`` counts refused records (an input that cannot be parsed counts as one).
    ``handle`` is private to the source that made the unit. A large input may come as several
    units (parts, in order); only its last one ``ends_input``. ``echoes`` counts the records the
    source read and left out because they are our own writes coming back (not in ``records``).
    """

    name: str
    records: list[WorkOrder]
    problems: list[Problem] = field(default_factory=list)
    rejected_records: int = 0
    handle: object = None
    # Where each of ``records`` stood in the input (its record index), when the source knows.
    positions: list[int] | None = None
    ends_input: bool = True
    # Records read that the source knows TracOS holds already (the same version read again),
    # not in ``records``: counted stale, never applied twice.
    stale: int = 0
    echoes: int = 0
    # Set by ``ClientSource.complete`` when the input was no longer this run's to archive:
    # another instance took it back (this one had gone silent past its claim's lease) and
    # archives it, and counts it as a file with its refused records, itself. The records this
    # run applied from it stay counted here (they were written here).
    taken_back: bool = False

    def refuse(self, position: int, reason: str) -> None:
        """Record ``position`` of ``records`` was refused downstream (TracOS would not store it):
        the unit is quarantined with that reason, its other records stay applied."""
        record = self.records[position]
        index = self.positions[position] if self.positions is not None else None
        self.problems.append(Problem("$", f"orderNo {record.number}: {reason}", record=index))
        self.rejected_records += 1


class ClientSource(Protocol):
    """Where client work orders come from."""

    async def prepare(self) -> None:
        """Check and set up what the source needs (folders, recovery of abandoned claims)."""

    def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        """Claim and decode inputs, grouped so that each group holds about ``max_records``."""

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        """The units' valid records are durably applied: archive them (or quarantine those with
        problems). A unit found no longer this source's to archive is marked ``taken_back``."""

    async def release(self, units: Sequence[InboundUnit]) -> None:
        """The units were not applied: give them back so that a later run tries again."""

    async def close(self) -> None: ...


@dataclass(slots=True)
class Delivery:
    """What a sink did with a batch: the numbers now durable on the client side, the records it
    refused, those it did not write because the client already holds a newer version of them
    (delivered by an overlapping run), those it left for a later run because something it does
    not control kept it from them for too long (``deferred``; ``deferred_because`` says what,
    once per change of state: empty while it goes on), and the fatal error that stopped it
    part-way, if any. ``superseded_by``: for superseded numbers, the last update of the
    client's copy, where the sink read it."""

    delivered: list[int] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)
    superseded_by: dict[int, datetime] = field(default_factory=dict)
    deferred: list[int] = field(default_factory=list)
    deferred_because: str = ""
    fatal: FatalError | None = None


class ClientSink(Protocol):
    """Where TracOS work orders go."""

    async def prepare(self) -> None: ...

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        """Deliver each order durably. Never raises for a per-record or I/O failure: reports it."""

    async def close(self) -> None: ...
