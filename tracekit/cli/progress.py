"""Progress bars on stderr (a capture's contexts, an analysis's traces). Shown on a terminal, or
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


def bar(label: str = "{task.description}", detail: str | None = None) -> Progress:
    """A bar on stderr: ``label``, the bar, done of total, ``detail`` (task fields), time elapsed;
    drawn only when ``wanted``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    columns: list[ProgressColumn] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if detail is not None:
        columns.append(TextColumn(detail))
    columns.append(TimeElapsedColumn())
    console = Console(stderr=True, force_terminal=True)
    return RichProgress(*columns, console=console, transient=False, disable=not wanted())


@contextmanager
def progress(total: int) -> Iterator[Listener]:
    """A listener that draws the bar over traces while the block runs (a silent one when not
    ``wanted``)."""
    if not wanted() or total < 2:
        yield Silent()
        return
    with bar("analyzing", "failed {task.fields[failed]}, running {task.fields[running]}") as p:
        yield _Bar(p, total)
