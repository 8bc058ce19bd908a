"""Helpers shared by the command modules: consoles, list parsing, output formats.

Nothing heavy is imported here: rich is loaded the first time a console prints, so a command that
only writes JSON never pays for it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from tracekit.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


# Tables fit this width when the output goes to a file or a pipe: room for every column tracekit
# draws; kernel names are shortened to fit (``--wide`` shows them whole).
PIPED_WIDTH = 100


class LazyConsole:
    """A rich ``Console`` made on first use."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                stderr=self._stderr, soft_wrap=True, markup=False, highlight=False, width=self.width()
            )
        return self._console

    def width(self) -> int | None:
        """The terminal's width (None: rich asks the terminal), ``$COLUMNS`` where set, else
        ``PIPED_WIDTH`` when the output is not a terminal (rich would take 80 columns)."""
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        stream = sys.stderr if self._stderr else sys.stdout
        return None if self._stderr or stream.isatty() else PIPED_WIDTH

    def print(self, *objects: Any) -> None:
        self.rich.print(*objects)

    def print_json(self, *, data: Any) -> None:
        self.rich.print_json(data=data)

    @property
    def is_terminal(self) -> bool:
        return (sys.stderr if self._stderr else sys.stdout).isatty()


out = LazyConsole(stderr=False)
err = LazyConsole(stderr=True)


def parse_int_list(text: str, flag: str) -> list[int]:
    """'128,1k,4096' -> [128, 1024, 4096]."""
    values = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        mult = 1
        if part[-1] in "kK":
            mult, part = 1024, part[:-1]
        if not part.isdigit():
            raise UserError(f"{flag} {text!r}: {part!r} is not a whole number (example: {flag} 128,1024,4096)")
        values.append(int(part) * mult)
    if not values:
        raise UserError(f"{flag} needs at least one value (example: {flag} 128,1024,4096)")
    return values


def check_choice(value: str, choices: tuple[str, ...] | list[str], flag: str) -> str:
    if value not in choices:
        raise UserError(f"{flag} {value!r} is not one of: {', '.join(choices)}")
    return value
