"""A live count per direction on a terminal; nothing at all otherwise (cron, CI, pipes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.progress import TaskID

from tracos_sync.pipeline import ProgressHook


@contextlib.contextmanager
def progress_display(enabled: bool) -> Iterator[ProgressHook | None]:
    """A live count per direction on a terminal; nothing at all otherwise (cron, CI, pipes)."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True, redirect_stderr=True) as display:
        tasks: dict[str, TaskID] = {}

        def advance(direction: str, done: int) -> None:
            if direction not in tasks:
                label = "files in" if direction == "inbound" else "work orders out"
                tasks[direction] = display.add_task(label, total=None)
            display.advance(tasks[direction], done)

        yield advance
