"""Which stretch of a trace to analyze: the whole trace, or the span of one named annotation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracekit.errors import UserError
from tracekit.trace.model import Trace

# On CPU-only traces the whole-trace window spans the operators and annotations (not Python frames).
_CPU_WINDOW_CATS = frozenset({"cpu_op", "Operator", "user_annotation"})


@dataclass
class Window:
    name: str
    start_us: float
    dur_us: float
    source: str = "trace"  # "trace" (the whole trace), "device" (a GPU-side annotation), "host" (a host span)

    @property
    def end_us(self) -> float:
        return self.start_us + self.dur_us


def find_window(trace: Trace, name: str | None) -> Window:
    """The whole trace (``name`` None), else the first annotation called ``name``: on GPU traces
    its device-side (``gpu_user_annotation``) span when there is one, else its host span."""
    spans = trace.spans
    if name is None:
        if trace.kind == "gpu":
            cols = trace.kernels
        else:
            mask = trace.host_mask(_CPU_WINDOW_CATS)
            cols = spans.take(np.flatnonzero(mask)) if mask.any() else spans
        s, e = float(cols.ts.min()), float(cols.end.max())
        return Window("whole trace", s, e - s)
    if trace.kind == "gpu":
        for a in trace.gpu_annotations:
            if a.name == name:
                return Window(name, a.ts, a.dur, "device")
    hit = np.flatnonzero(spans.name == trace.code(name))
    if hit.size:
        i = int(hit[0])
        return Window(name, float(spans.ts[i]), float(spans.dur[i]), "host")
    annotations = np.unique(spans.name[trace.host_mask(frozenset({"user_annotation"}))]).tolist()
    names = sorted({a.name for a in trace.gpu_annotations} | {trace.strings[c] for c in annotations})
    hint = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
    raise UserError(f"{trace.path}: no annotation named {name!r} for --window (available: {hint or 'none'})")
