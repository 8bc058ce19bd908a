"""``--check 'tokens_per_s@4096>=40'``: gate a pipeline on report figures."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tracekit.errors import UserError
from tracekit.manifest import MAX_CONTEXT_TOKENS

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_EXPR = re.compile(r"^\s*([a-z_]+)\s*@\s*(\d+)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class Check:
    metric: str
    context: int
    op: str
    value: float
    text: str


def parse_check(text: str) -> Check:
    m = _EXPR.match(text)
    if not m:
        raise UserError(f"--check {text!r}: expected METRIC@CONTEXT OP VALUE, e.g. 'tokens_per_s@4096>=40'")
    if len(m.group(2)) > 9 or not 0 < int(m.group(2)) <= MAX_CONTEXT_TOKENS:
        raise UserError(f"--check {text[:80]!r}: the context is a whole number from 1 to {MAX_CONTEXT_TOKENS:,}")
    try:
        value = float(m.group(4)) if len(m.group(4)) <= 32 else math.inf
    except ValueError:
        raise UserError(f"--check {text[:80]!r}: {m.group(4)!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"--check {text[:80]!r}: the value must be a finite number of at most 32 characters")
    return Check(m.group(1), int(m.group(2)), m.group(3), value, text.strip())


def _metrics(report: dict[str, Any]) -> list[str]:
    """The names a check can gate on: every figure that is a number in some context row (a text
    field such as ``error``, null where a context succeeded, is not one)."""
    rows = report["contexts"]
    names = {k for row in rows for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return sorted(names - {"context_tokens"})


def unknown_metrics(checks: list[Check], report: dict[str, Any]) -> str | None:
    """A usage error (exit 2, not a failed gate) for checks naming no figure of the report."""
    known = _metrics(report)
    bad = [ch for ch in checks if ch.metric not in known]
    if not bad:
        return None
    return f"--check {bad[0].text!r}: unknown metric {bad[0].metric!r} (one of {', '.join(known)})"


def evaluate(checks: list[Check], report: dict[str, Any]) -> list[str]:
    """One line per violated check (empty when all hold)."""
    by_ctx = {c["context_tokens"]: c for c in report["contexts"]}
    failures = []
    for ch in checks:
        row = by_ctx.get(ch.context)
        if row is None:
            failures.append(f"{ch.text}: the run has no context {ch.context} (has {sorted(by_ctx)})")
            continue
        if ch.metric not in row or isinstance(row[ch.metric], (dict, list, str)):
            numeric = sorted(k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            failures.append(f"{ch.text}: unknown metric {ch.metric!r} (one of {', '.join(numeric)})")
            continue
        actual = row[ch.metric]
        if actual is None:
            failures.append(f"{ch.text}: {ch.metric} was not measured at context {ch.context}")
        elif not _OPS[ch.op](actual, ch.value):
            failures.append(f"{ch.text}: {ch.metric} at context {ch.context} is {actual:g}")
    return failures
