"""How ``tracos-sync mapping test`` tells what each record became: readable on a terminal
(rich; plain text when piped), or one JSON document for tools (``--json``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from tracos_sync.connectors.client_erp.resolve import NaiveZone
from tracos_sync.connectors.client_erp.trial import ABSENT, RecordTrial, counted, order_fields
from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.domain.model import Problem

# Where one problem of a mapping's description ends and the next begins (each names its key).
_NEXT_KEY = re.compile(r"; (?=mapping[.:])")


def _console(stderr: bool = False) -> Console:
    # soft_wrap: a long line is the terminal's to wrap, never cut into two lines of text.
    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def print_trials(trials: Sequence[RecordTrial], samples: int, zone: NaiveZone) -> None:
    """The zone naive client times are read in, each record's verdict with what it became,
    then a count."""
    console = _console()
    console.print(Text(f"naive times read in {zone.name} ({zone.origin})", style="dim"))
    for trial in trials:
        console.print(_verdict(trial))
        for problem in trial.problems:
            console.print(Text(f"    {_problem(problem)}", style="red"))
        if trial.order is not None:
            console.print(_line("work order", orjson.dumps(order_fields(trial.order)).decode()))
        if trial.unwritable:
            console.print(_line("written back", "cannot be written in this format:", "yellow"))
            for problem in trial.unwritable:
                console.print(Text(f"    {_problem(problem)}", style="yellow"))
        if trial.written is not None:
            console.print(_line("written back", orjson.dumps(trial.written).decode()))
            if not trial.differences:
                console.print(_line("round trip", "the same record", "green"))
            for number, difference in enumerate(trial.differences):
                label = "round trip" if number == 0 else ""
                console.print(_line(label, difference.describe(), "yellow"))
    refused = sum(trial.refused for trial in trials)
    total = Text(
        f"{counted(len(trials), 'record')} in {counted(samples, 'sample')}: "
        f"{len(trials) - refused} accepted, {refused} refused"
    )
    total.stylize("bold red" if refused else "bold green")
    console.print(total)


def _verdict(trial: RecordTrial) -> Text:
    line = Text(trial.where, style="bold")
    if trial.refused:
        count = len(trial.problems)
        line.append(f"  REFUSED: {count} problem{'' if count == 1 else 's'}", style="bold red")
    else:
        line.append("  ok", style="bold green")
    return line


def _line(label: str, text: str, style: str = "") -> Text:
    return Text(f"  {label:<13}") + Text(text, style=style)


def _problem(problem: Problem) -> str:
    return f"{problem.path}: {problem.reason}"


def trials_json(trials: Sequence[RecordTrial], zone: NaiveZone) -> dict[str, Any]:
    """The whole test as one JSON document: the zone naive times are read in, counts, then
    each record (a side of a difference that is absent has no key)."""
    refused = sum(trial.refused for trial in trials)
    return {
        "timezone": {"name": zone.name, "from": zone.origin},
        "records": len(trials),
        "accepted": len(trials) - refused,
        "refused": refused,
        "results": [_trial_json(trial) for trial in trials],
    }


def _trial_json(trial: RecordTrial) -> dict[str, Any]:
    return {
        "sample": trial.sample,
        "record": trial.record,
        "accepted": not trial.refused,
        "problems": [{"path": p.path, "reason": p.reason} for p in trial.problems],
        "workOrder": None if trial.order is None else order_fields(trial.order),
        "written": trial.written,
        "unwritable": [{"path": p.path, "reason": p.reason} for p in trial.unwritable],
        "differences": [
            {"path": d.path}
            | ({} if d.given is ABSENT else {"given": d.given})
            | ({} if d.written is ABSENT else {"written": d.written})
            for d in trial.differences
        ],
    }


def print_config_error(error: ConfigurationError) -> None:
    """A configuration error on standard error, each of its problems on a line of its own."""
    console = _console(stderr=True)
    first, *others = _NEXT_KEY.split(str(error))
    console.print(Text("invalid: ", style="bold red") + Text(first))
    for other in others:
        console.print(Text(f"  {other}"))
