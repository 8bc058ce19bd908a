"""``tracekit analyze``: attribute device time in any torch.profiler trace."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import typer
from rich.table import Table

from tracekit.analysis.analyze import AnalysisResult, analyze_trace
from tracekit.analysis.rules import RULE_INDEX
from tracekit.cli.common import check_choice, err, out
from tracekit.errors import UserError
from tracekit.trace.load import load_trace

SCHEMA = "tracekit.analysis/1"


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

    Categories: attention, kv_cache, gemm, norm, rope, activation, elementwise, sampling, memcpy,
    memset, communication, other. Each kernel is classified by the first matching rule of one
    ordered table (kernel name, launching op, enclosing scopes); --explain shows which.

    Examples:
      tracekit analyze trace.json.gz --window ProfilerStep#6
      tracekit analyze run/context-004096.pt.trace.json.gz --by step --format json
      tracekit analyze trace.json.gz --explain 'flash|attn'
    """
    check_choice(by, ("category", "phase", "step", "kernel"), "--by")
    check_choice(fmt, ("table", "json", "csv"), "--format")
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

            res.extra["hta"] = hta_summary(path, trace, err)
        if pattern is not None:
            _explain(res, pattern)
            continue
        results.append(res)
    if pattern is not None:
        return
    if fmt == "json":
        print(json.dumps({"schema": SCHEMA, "traces": [r.to_json() for r in results]}, indent=2))
    elif fmt == "csv":
        print(_csv(results, by), end="")
    else:
        for r in results:
            _table(r, by)


def _explain(res: AnalysisResult, pattern: re.Pattern[str]) -> None:
    t = Table(title=f"{res.path}: rules for kernels matching {pattern.pattern!r}")
    for col in ("kernel", "count", "time µs", "category", "rule", "why"):
        t.add_column(col, overflow="fold")
    n = 0
    for k in res.kernels:
        if pattern.search(k.name):
            rule = RULE_INDEX.get(k.rule)
            t.add_row(k.name, str(k.count), f"{k.time_us:.1f}", k.category, k.rule, rule.note if rule else "")
            n += 1
    if n == 0:
        err.print(f"tracekit: no kernel in {res.path} matches {pattern.pattern!r}")
    else:
        out.print(t)


def _rows(r: AnalysisResult, by: str) -> tuple[list[str], list[list[str]]]:
    if by == "category":
        total = r.total_us or 1.0
        rows = [
            [k, f"{v.time_us:.1f}", str(v.count), f"{100 * v.time_us / total:.1f}"]
            for k, v in sorted(r.categories.items(), key=lambda kv: -kv[1].time_us)
            if v.count
        ]
        return ["category", "time_us", "count", "percent"], rows
    if by == "kernel":
        return ["kernel", "category", "rule", "count", "time_us"], [
            [k.name, k.category, k.rule, str(k.count), f"{k.time_us:.1f}"] for k in r.kernels
        ]
    phases = r.phases if by == "step" else _merge_phases(r)
    cats = sorted({c for p in phases for c in p.categories})
    head = ["phase", "step", "context_tokens", "time_us", "span_us", "idle_us", *cats]
    rows = [
        [
            p.phase,
            "" if p.step is None else str(p.step),
            "" if p.context_tokens is None else str(p.context_tokens),
            f"{p.time_us:.1f}",
            f"{p.span_us:.1f}",
            f"{p.idle_us:.1f}",
            *[f"{p.categories[c].time_us:.1f}" if c in p.categories else "0" for c in cats],
        ]
        for p in phases
    ]
    return head, rows


def _merge_phases(r: AnalysisResult) -> list:  # type: ignore[type-arg]
    from tracekit.analysis.analyze import CategoryTime, PhaseResult

    merged: dict[str, PhaseResult] = {}
    for p in r.phases:
        m = merged.get(p.phase)
        if m is None:
            m = merged[p.phase] = PhaseResult(p.phase, None, None, 0.0, 0.0, 0.0, 0.0, p.start_us, {})
        m.time_us += p.time_us
        m.span_us += p.span_us
        m.busy_us += p.busy_us
        m.idle_us += p.idle_us
        for k, v in p.categories.items():
            c = m.categories.setdefault(k, CategoryTime())
            c.time_us += v.time_us
            c.count += v.count
    return list(merged.values())


def _table(r: AnalysisResult, by: str) -> None:
    head, rows = _rows(r, by)
    busy_pct = 100 * r.busy_us / r.window.dur_us if r.window.dur_us else 0.0
    t = Table(
        title=f"{r.path} [{r.device}] window {r.window.name}: {r.window.dur_us / 1000:.3f} ms, "
        f"busy {r.busy_us / 1000:.3f} ms ({busy_pct:.1f}%), idle {r.idle_us / 1000:.3f} ms"
    )
    for h in head:
        t.add_column(h, overflow="fold", justify="left" if h in ("category", "kernel", "phase", "rule") else "right")
    for row in rows:
        t.add_row(*row)
    out.print(t)
    hta = r.extra.get("hta")
    if hta:
        out.print_json(data=hta)


def _csv(results: list[AnalysisResult], by: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    for i, r in enumerate(results):
        head, rows = _rows(r, by)
        if i == 0:
            w.writerow(["trace", *head])
        for row in rows:
            w.writerow([r.path, *row])
    return buf.getvalue()
