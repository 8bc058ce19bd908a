"""``tracekit diff``: two runs side by side, context by context, with ratios."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tracekit.cli.common import check_choice, err, out
from tracekit.errors import UserError
from tracekit.sanitize import printable


def diff(
    run_a: Path = typer.Argument(..., help="Baseline run folder."),
    run_b: Path = typer.Argument(..., help="Run folder to compare against the baseline."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """Compare two capture runs at their common context lengths (ratio = B / A).

    \b
    Examples:
      tracekit diff traces/RUN-sdpa traces/RUN-math
      tracekit diff traces/RUN-sdpa traces/RUN-math --format json
    """
    from rich.table import Table

    from tracekit.report.diff import FIELDS, diff_json, diff_runs

    check_choice(fmt, ("table", "json"), "--format")
    a, b, rows = diff_runs(run_a, run_b)
    for run in (a, b):
        for finding in run.findings:
            if finding.kind == "trace-problem":
                err.print(printable(f"tracekit: warning: {run.run}: {finding.message}"))
    if not rows:
        raise UserError(f"{run_a} and {run_b} share no successfully captured context length")
    if fmt == "json":
        print(json.dumps(diff_json(a, b, rows), indent=2))
        return
    t = Table(title=f"A = {printable(a.run)}\nB = {printable(b.run)}")
    t.add_column("context", justify="right")
    for f in FIELDS:
        t.add_column(f"{f} A", justify="right")
        t.add_column("B", justify="right")
        t.add_column("B/A", justify="right")
    for r in rows:
        cells = [str(r.context_tokens)]
        for f in FIELDS:
            ratio = r.ratio(f)
            cells += [_g(r.a[f]), _g(r.b[f]), "n/a" if ratio is None else f"{ratio:.2f}x"]
        t.add_row(*cells)
    out.print(t)


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
