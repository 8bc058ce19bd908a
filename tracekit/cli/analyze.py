"""``tracekit analyze``: attribute device time in any torch.profiler trace."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from tracekit.cli.common import check_choice, err, out
from tracekit.errors import UserError


def analyze(
    traces: list[Path] = typer.Argument(..., help="Trace files (*.json or *.json.gz) from any torch.profiler source."),
    window: str | None = typer.Option(None, help="Restrict to the span of this annotation (e.g. ProfilerStep#6)."),
    by: str = typer.Option("category", help="Group by: category, phase, step or kernel."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    explain: str | None = typer.Option(None, help="Show which rule classified each kernel matching this regex."),
    partial: bool = typer.Option(False, help="Analyze the usable prefix of a truncated trace (with a warning)."),
    hta: bool = typer.Option(False, help="Add HolisticTraceAnalysis's temporal and idle breakdowns (needs [hta])."),
) -> None:
    """Attribute device time to attention and everything else, per window, phase and step.

    Categories: attention, kv_cache, gemm, convolution, norm, rope, activation, elementwise, sampling,
    memcpy, memset, communication, other. Each kernel is classified by the first matching rule of one
    ordered table (kernel name, launching op, enclosing scopes); --explain shows which.

    \b
    Examples:
      tracekit analyze trace.json.gz --window ProfilerStep#6
      tracekit analyze run/context-004096.pt.trace.json.gz --by step --format json
      tracekit analyze trace.json.gz --explain 'flash|attn'
    """
    from tracekit.analysis.analyze import analyze_trace
    from tracekit.report import tables
    from tracekit.trace.load import load_trace

    check_choice(by, tables.GROUPINGS, "--by")
    check_choice(fmt, tables.FORMATS, "--format")
    pattern = None
    if explain is not None:
        try:
            pattern = re.compile(explain)
        except re.error as exc:
            raise UserError(f"--explain {explain!r} is not a valid regular expression ({exc})") from None
    results = []
    for path in traces:
        trace = load_trace(path, partial=partial)
        res = analyze_trace(trace, window)
        for w in res.warnings:
            err.print(f"tracekit: warning: {w}")
        if hta:
            from tracekit.analysis.hta_bridge import hta_summary

            res.extra["hta"], notes = hta_summary(path, trace)
            for note in notes:
                err.print(f"tracekit: {note}")
        if pattern is not None:
            shown = tables.explain(res, pattern)
            if shown is None:
                err.print(f"tracekit: no kernel in {res.path} matches {pattern.pattern!r}")
            else:
                out.print(shown)
            continue
        results.append(res)
    if pattern is not None:
        return
    if fmt == "json":
        print(tables.to_json(results))
    elif fmt == "csv":
        print(tables.to_csv(results, by), end="")
    else:
        for r in results:
            out.print(tables.table(r, by))
            if r.extra.get("hta"):
                out.print_json(data=r.extra["hta"])
