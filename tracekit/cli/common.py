"""Helpers shared by the command modules: consoles, list parsing, output formats.

Nothing heavy is imported here: rich is loaded the first time a console prints, so a command that
only writes JSON never pays for it.
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING, Any

from tracekit.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console


# Tables fit this width when the output goes to a file or a pipe: room for every column tracekit
# draws; kernel names are shortened to fit (``--wide`` shows them whole).
PIPED_WIDTH = 100
# The narrowest width tables are drawn at: narrower, every cell wraps to a letter or two and a
# table says nothing; at this width the terminal wraps whole lines, which stay readable.
MIN_WIDTH = 60


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
        """``$COLUMNS`` where set, else the terminal's width, at least ``MIN_WIDTH``; else
        ``PIPED_WIDTH`` when the output is not a terminal (rich would take 80 columns), and None
        (rich's choice) for a stderr that is not one."""
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return max(int(columns), MIN_WIDTH)
        stream = sys.stderr if self._stderr else sys.stdout
        if stream.isatty():
            try:
                return max(os.get_terminal_size(stream.fileno()).columns, MIN_WIDTH)
            except (OSError, ValueError):
                return None
        return None if self._stderr else PIPED_WIDTH

    def print(self, *objects: Any) -> None:
        self.rich.print(*objects)

    def print_json(self, *, data: Any) -> None:
        self.rich.print_json(data=data)

    @property
    def is_terminal(self) -> bool:
        return (sys.stderr if self._stderr else sys.stdout).isatty()


out = LazyConsole(stderr=False)
err = LazyConsole(stderr=True)


# Physical ranges: no model has a context of 16 M tokens yet; no machine runs 4,096 workers.
MAX_TOKENS = 1 << 24
MAX_WORKERS = 4096
# The longest number text read at all: a 5,000-digit literal is refused before int() or float()
# spend time on it (or refuse it in words of their own).
MAX_NUMBER_CHARS = 32


def _span(lo: float, hi: float, integer: bool) -> str:
    def show(x: float) -> str:
        return f"{int(x):,}" if integer or float(x).is_integer() else f"{x:g}"

    return f"{'a whole number' if integer else 'a number'} from {show(lo)} to {show(hi)}"


def bounded_number(text: str, flag: str, lo: float, hi: float, *, integer: bool) -> float:
    """The number policy, for every number tracekit reads from a flag, a variable or a list: finite,
    within ``[lo, hi]`` (a physical range), whole where it must be; otherwise one line naming
    ``flag`` and the valid range."""
    t = text.strip()
    wanted = _span(lo, hi, integer)
    shown = t if len(t) <= MAX_NUMBER_CHARS else f"{t[:12]}... ({len(t)} characters)"
    value: float | None = None
    if len(t) <= MAX_NUMBER_CHARS:
        try:
            value = int(t) if integer else float(t)
        except ValueError:
            value = None
    if value is None or not math.isfinite(value) or not lo <= value <= hi:
        raise UserError(f"{flag} {shown!r}: give {wanted}")
    return value


class Number:
    """A flag's parser under ``bounded_number``: ``typer.Option(32, "--tokens", parser=Number("--tokens", 1, 10**6))``.
    Kept on the parameter, so a test can find every numeric flag and its range."""

    def __init__(self, flag: str, lo: float, hi: float, *, integer: bool = True) -> None:
        self.flag, self.lo, self.hi, self.integer = flag, lo, hi, integer
        self.__name__ = "integer" if integer else "number"  # typer names the type after the parser

    def __call__(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(value)  # a default: checked like any other value
        x = bounded_number(str(value), self.flag, self.lo, self.hi, integer=self.integer)
        return int(x) if self.integer else float(x)


def number_option(flag: str, lo: float, hi: float, help: str, *, integer: bool = True) -> Any:
    """A numeric flag with no default under the number policy, its name written once."""
    import typer

    return typer.Option(None, flag, parser=Number(flag, lo, hi, integer=integer), help=help)


def parse_int_list(text: str, flag: str, lo: int = 1, hi: int = 1 << 30) -> list[int]:
    """'128,1k,4096' -> [128, 1024, 4096], each within ``[lo, hi]``."""
    values = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        mult = 1
        if part[-1] in "kK":
            mult, part = 1024, part[:-1]
        if not part.isdigit():
            raise UserError(f"{flag} {text!r}: {part!r} is not a whole number (example: {flag} 128,1024,4096)")
        if len(part) > MAX_NUMBER_CHARS:
            raise UserError(f"{flag}: {part[:12]}... ({len(part)} digits): give {_span(lo, hi, True)}")
        value = int(part) * mult
        if not lo <= value <= hi:
            raise UserError(f"{flag} {value}: give {_span(lo, hi, True)}")
        values.append(value)
    if not values:
        raise UserError(f"{flag} needs at least one value (example: {flag} 128,1024,4096)")
    return values


def check_choice(value: str, choices: tuple[str, ...] | list[str], flag: str) -> str:
    if value not in choices:
        raise UserError(f"{flag} {value!r} is not one of: {', '.join(choices)}")
    return value
