"""The output-escaping policy, in one place: what reaches a terminal, a CSV cell or a JSON file.

Trace names come from other programs and may carry anything. The same policy serves every output:
terminal lines, Markdown and HTML (escaped for their syntax after ``printable``) and CSV cells
(``cell``: a kernel named ``=HYPERLINK(...)`` must not run as a spreadsheet formula). Control characters (C0, DEL, C1)
and the Unicode controls that reorder or hide text (bidirectional overrides and isolates) are
written as visible escapes (``\\x1b``, ``\\u202e``), so a kernel name can neither retitle a
terminal, clear it, nor hide part of a line. JSON written for machines holds no ``NaN`` or
``Infinity`` (strict parsers refuse them): such a value becomes ``null``.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

_CONTROL_CLASS = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"


@functools.cache
def _controls() -> re.Pattern[str]:
    return re.compile(_CONTROL_CLASS)  # compiled on first use, not at every start-up


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as a visible escape (one line, no effects)."""
    return _controls().sub(_escape, text)


_NUMBER = r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?"


def cell(text: str) -> str:
    """A CSV cell: ``printable``, and a text a spreadsheet would run as a formula (starting with
    ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) prefixed with ``'``; numbers
    (``-1.5``) stay numbers."""
    text = printable(text)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and re.fullmatch(_NUMBER, text) is None:
        return "'" + text
    return text


def finite(obj: Any) -> Any:
    """``obj`` (JSON-like) with every non-finite float replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj
