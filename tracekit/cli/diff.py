"""``tracekit diff``: two runs side by side, context by context, with ratios, intervals and verdicts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tracekit.cli.common import check_choice, err, out
from tracekit.errors import UserError
from tracekit.sanitize import finite, printable

if TYPE_CHECKING:
    from tracekit.report.diff import Diff

FORMATS = ("table", "json", "md", "html")


def diff(
    run_a: Path = typer.Argument(..., help="Baseline run folder."),
    run_b: Path = typer.Argument(..., help="Run folder to compare against the baseline."),
    fmt: str = typer.Option("table", "--format", "-f", help="table (terminal), json, md or html (to stdout)."),
) -> None:
    """Compare two capture runs at their common context lengths (ratio = B / A).

    Per context: decode ms/token of each run with its 95% interval, the ratio B/A with its 95%
    interval (bootstrapped from both runs' rounds), and a verdict: B faster (the whole interval
    below 1), B slower (above 1), or cannot tell. The settings of both runs stand side by side,
    every difference flagged; a warning says when the runs are not comparable (another model,
    backend, device or dtype, or a machine too busy to measure).

    \b
    Examples:
      tracekit diff traces/RUN-sdpa traces/RUN-math
      tracekit diff traces/RUN-sdpa traces/RUN-math --format json
      tracekit diff traces/RUN-sdpa traces/RUN-math --format md > diff.md
    """
    from tracekit.report.diff import diff_runs

    check_choice(fmt, FORMATS, "--format")
    d = diff_runs(run_a, run_b)
    for run in (d.a, d.b):
        for finding in run.findings:
            if finding.kind == "trace-problem":
                err.print(printable(f"tracekit: warning: {run.facts.run}: {finding.message}"))
    if not d.rows:
        raise UserError(f"{run_a} and {run_b} share no successfully captured context length")
    if fmt == "json":
        from tracekit.report.diff import diff_json

        print(json.dumps(finite(diff_json(d)), indent=2, allow_nan=False))
    elif fmt == "md":
        from tracekit.report.diff import sections
        from tracekit.report.renderers.markdown import render_sections

        print(render_sections(sections(d)), end="")
    elif fmt == "html":
        from tracekit.report.diff import sections
        from tracekit.report.renderers.htmlreport import render_sections as html_sections

        print(html_sections(sections(d), "tracekit diff"), end="")
    else:
        _terminal(d)


def _terminal(d: Diff) -> None:
    from rich.table import Table

    from tracekit.report.diff import ROWS_HEAD, SETTINGS_HEAD, context_rows, settings_rows, summary_lines

    width = out.rich.width
    for line in [f"A = {d.a.facts.run}", f"B = {d.b.facts.run}", *summary_lines(d)]:
        out.print(textwrap.fill(printable(line), width, subsequent_indent="  "))
    t = Table(title="decode time per token (medians, 95% intervals; B/A < 1: B is faster)")
    for h in ROWS_HEAD:
        t.add_column(h, justify="left" if h == "verdict" else "right", no_wrap=h in ("context", "verdict"))
    for row in context_rows(d):
        t.add_row(*row)
    out.print(t)
    s = Table(title="settings")
    for h in SETTINGS_HEAD:
        s.add_column(h, overflow="fold")
    for row in settings_rows(d):
        s.add_row(*map(printable, row))
    out.print(s)
