"""Helpers shared by the command modules: consoles, list parsing, output formats."""

from __future__ import annotations

import sys

from rich.console import Console

from tracekit.errors import UserError

# Wide tables when piped (rich would wrap at 80 columns); the terminal's width otherwise.
out = Console(soft_wrap=True, markup=False, highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


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
