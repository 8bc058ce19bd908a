"""A progress bar over traces on stderr: completed, failed, running. Shown on a terminal, or
wherever ``TRACEKIT_PROGRESS=1`` asks for it (``0`` hides it); never on stdout, which carries the
results."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tracekit.fleet.plan import Listener, Silent

if TYPE_CHECKING:
    from rich.progress import Progress


class _Bar:
    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("traces", total=total, failed=0, running=0)

    def update(self, done: int, failed: int, running: int) -> None:
        self.progress.update(self.task, completed=done, failed=failed, running=running)


def wanted() -> bool:
    setting = os.environ.get("TRACEKIT_PROGRESS", "")
    if setting in ("0", "1"):
        return setting == "1"
    return sys.stderr.isatty()


@contextmanager
def progress(total: int) -> Iterator[Listener]:
    """A listener that draws the bar while the block runs (a silent one when not ``wanted``)."""
    if not wanted() or total < 2:
        yield Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, force_terminal=True)
    columns = (
        TextColumn("analyzing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}, running {task.fields[running]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as p:
        yield _Bar(p, total)
