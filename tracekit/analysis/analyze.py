"""``analyze_trace``: attribute a trace's device time to categories, per window, phase and step.

The attribution (``attribute``) is made once per trace; this module restricts it to a window and
sums it with the analyses of ``breakdown``.
"""

from __future__ import annotations

from tracekit.analysis.attribute import Attribution, attribute
from tracekit.analysis.breakdown import (
    busy_time,
    category_totals,
    kernel_rows,
    phase_kernel_rows,
    phase_results,
    unlinked_and_graph,
)
from tracekit.analysis.result import AnalysisResult, summed_rows
from tracekit.analysis.window import Window, find_window, find_windows, merged_window
from tracekit.errors import InputError
from tracekit.trace.model import Trace

PHASES = ("prefill", "decode", "all")


def analyze_trace(
    trace: Trace,
    window: str | None = None,
    *,
    attribution: Attribution | None = None,
    window_all: bool = False,
    phase: str | None = None,
) -> AnalysisResult:
    """Attribute the device time of ``trace`` to categories: all of it, or within ``window`` (an
    annotation name or a shell-style pattern over the names: the earliest match, or with
    ``window_all`` every match summed, overlapping ones once), or only the work of the phase called
    ``phase`` (``decode``: every decode step; its busy and idle time are the steps' own, not the
    gaps between them).

    Pass ``attribution`` when the trace was attributed already (the Perfetto export tags events from
    the same one)."""
    att = attribution if attribution is not None else attribute(trace)
    if window is not None and window_all:
        wins = merged_window(find_windows(trace, window), window)
        parts = [_result(trace, att.within(w), w) for w in wins]
        res = _summed(trace, parts, window, len(wins))
    elif phase is not None and phase != "all" and window is None:
        res = _phase_result(trace, att, phase)
    else:
        win = find_window(trace, window)
        res = _result(trace, att.within(win) if window is not None else att, win)
    if res.window.note:
        res.notes.append(res.window.note)
    if trace.partial:
        res.warnings.append(f"{trace.path}: trace is truncated; analyzed the usable prefix only")
    if trace.skipped_events:
        res.warnings.append(f"{trace.path}: skipped {trace.skipped_events} malformed events")
    if trace.out_of_range:
        res.warnings.append(
            f"{trace.path}: skipped {trace.out_of_range} events whose times are missing, not finite, negative or "
            "far outside the trace's span"
        )
    return res


def _result(trace: Trace, sel: Attribution, win: Window) -> AnalysisResult:
    busy = busy_time(sel, win.start_us, win.end_us)
    unlinked_us, unlinked_count, graph_us, graph_count = unlinked_and_graph(sel)
    return AnalysisResult(
        path=trace.path,
        device=trace.kind,
        window=win,
        busy_us=busy,
        idle_us=max(0.0, win.dur_us - busy),
        categories=category_totals(sel),
        phases=phase_results(sel),
        kernels=kernel_rows(sel),
        kernels_by_phase=phase_kernel_rows(sel),
        unlinked_us=unlinked_us,
        unlinked_count=unlinked_count,
        graph_us=graph_us,
        graph_count=graph_count,
        partial=trace.partial,
    )


def _phase_result(trace: Trace, att: Attribution, phase: str) -> AnalysisResult:
    """The work of every phase called ``phase``; its window is the phases' spans laid end to end."""
    sel = att.in_phase(phase)
    phases = [p for p in phase_results(sel) if p.phase == phase]
    if not phases:
        found = sorted({p.phase for p in phase_results(att)})
        raise InputError(
            trace.path,
            f"no {phase} phase in this trace (phases: {', '.join(found) or 'none'})",
            kind="no-phase",
            advice="use --phase all, or a trace tracekit captured",
        )
    span = sum(p.span_us for p in phases)
    busy = sum(p.busy_us for p in phases)
    win = Window(f"{len(phases)} {phase} phase{'s' if len(phases) != 1 else ''}", phases[0].start_us, span, "phase")
    res = _result(trace, sel, win)
    res.phases = phases
    res.busy_us, res.idle_us = busy, sum(p.idle_us for p in phases)
    return res


def _summed(trace: Trace, parts: list[AnalysisResult], pattern: str, n: int) -> AnalysisResult:
    """Several windows' results as one: sums of times and counts, kernels merged by row."""
    cats, kernels = summed_rows(parts)
    win = Window(
        f"{pattern} ({n} windows summed)", parts[0].window.start_us, sum(r.window.dur_us for r in parts), "sum"
    )
    win.note = f"window {pattern!r}: {n} windows summed (overlapping ones counted once)"
    return AnalysisResult(
        path=trace.path,
        device=trace.kind,
        window=win,
        busy_us=sum(r.busy_us for r in parts),
        idle_us=sum(r.idle_us for r in parts),
        categories=cats,
        phases=[p for r in parts for p in r.phases],
        kernels=kernels,
        unlinked_us=sum(r.unlinked_us for r in parts),
        unlinked_count=sum(r.unlinked_count for r in parts),
        graph_us=sum(r.graph_us for r in parts),
        graph_count=sum(r.graph_count for r in parts),
        partial=trace.partial,
    )
