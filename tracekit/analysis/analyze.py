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
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.window import find_window
from tracekit.trace.model import Trace


def analyze_trace(trace: Trace, window: str | None = None, *, attribution: Attribution | None = None) -> AnalysisResult:
    """Attribute the device time of ``trace`` (within ``window``, an annotation name) to categories.

    Pass ``attribution`` when the trace was attributed already (the Perfetto export tags events from
    the same one)."""
    att = attribution if attribution is not None else attribute(trace)
    win = find_window(trace, window)
    sel = att.within(win) if window is not None else att
    busy = busy_time(sel, win.start_us, win.end_us)
    unlinked_us, unlinked_count, graph_us, graph_count = unlinked_and_graph(sel)
    res = AnalysisResult(
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
