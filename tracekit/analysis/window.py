"""Which stretch of a trace to analyze: the whole trace, or the span of one named annotation.

On GPU traces an annotation has two sides: the host span (when the program ran it) and, written
by the profiler, a device-side span (``gpu_user_annotation``) meant to cover the device work
launched within it. CUDA's does (it is exactly that work's extent); ROCm writes ~17 µs ones that
cover almost nothing. So the device side is used only where it covers the work launched from
within the host span; otherwise the window is that work's extent, taken from the host side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracekit.errors import UserError
from tracekit.trace.model import Event, Trace
from tracekit.trace.tree import nearest_marked

# On CPU-only traces the whole-trace window spans the operators and annotations (not Python frames).
_CPU_WINDOW_CATS = frozenset({"cpu_op", "Operator", "user_annotation"})
# How much of the launched work a device-side annotation must overlap to be trusted.
COVER = 0.99


@dataclass
class Window:
    name: str
    start_us: float
    dur_us: float
    # "trace" (the whole trace), "device" (a device-side annotation), "host" (from the host span:
    # the device work launched within it on GPU traces, the span itself on CPU traces)
    source: str = "trace"

    @property
    def end_us(self) -> float:
        return self.start_us + self.dur_us


def launched_extent(trace: Trace, span: int) -> tuple[float, float] | None:
    """First start and last end of the device work launched from within host span ``span`` (by
    the nesting of its launch call under the span), or None if there is none."""
    marked = np.zeros(len(trace.spans), bool)
    marked[span] = True
    node = np.append(nearest_marked(trace.parent, marked), -1)
    return launched_extents(trace, node).get(span)


def launched_extents(trace: Trace, node: NDArray[np.int64]) -> dict[int, tuple[float, float]]:
    """First start and last end of the device work launched under each marked host span: ``node``
    gives, for each host span, the marked span at or above it (-1: none), and one more entry, -1,
    read for work with no launch in the trace."""
    link = trace.link
    if not len(link):
        return {}
    owner = node[np.where(link >= 0, link, len(node) - 1)]
    has = owner >= 0
    if not has.any():
        return {}
    uniq, inv = np.unique(owner[has], return_inverse=True)
    lo = np.full(len(uniq), np.inf)
    hi = np.full(len(uniq), -np.inf)
    np.minimum.at(lo, inv, trace.kernels.ts[has])
    np.maximum.at(hi, inv, trace.kernels.end[has])
    return {int(u): (float(a), float(b)) for u, a, b in zip(uniq.tolist(), lo.tolist(), hi.tolist())}


def covers(start: float, end: float, extent: tuple[float, float]) -> bool:
    """Whether ``[start, end]`` holds (nearly all of) ``extent``."""
    lo, hi = extent
    if hi <= lo:
        return start <= lo <= end
    return max(0.0, min(end, hi) - max(start, lo)) >= COVER * (hi - lo)


def find_window(trace: Trace, name: str | None) -> Window:
    """The whole trace (``name`` None), else the earliest annotation called ``name``: on GPU traces
    its device-side span where that covers the work launched within the host span, else that
    work's extent; on CPU traces (or with no work launched within) its host span."""
    spans = trace.spans
    if name is None:
        if trace.kind == "gpu":
            cols = trace.kernels
        else:
            mask = trace.host_mask(_CPU_WINDOW_CATS)
            cols = spans.take(np.flatnonzero(mask)) if mask.any() else spans
        s, e = float(cols.ts.min()), float(cols.end.max())
        return Window("whole trace", s, e - s)
    hit = np.flatnonzero(spans.name == trace.code(name)) if trace.code(name) >= 0 else np.zeros(0, np.int64)
    host = int(hit[np.argmin(spans.ts[hit])]) if hit.size else None
    if trace.kind == "gpu":
        device = _earliest(trace.gpu_annotations, name)
        extent = launched_extent(trace, host) if host is not None else None
        if device is not None and (extent is None or covers(device.ts, device.ts + device.dur, extent)):
            return Window(name, device.ts, device.dur, "device")
        if extent is not None:
            return Window(name, extent[0], extent[1] - extent[0], "host")
    if host is not None:
        return Window(name, float(spans.ts[host]), float(spans.dur[host]), "host")
    annotations = np.unique(spans.name[trace.host_mask(frozenset({"user_annotation"}))]).tolist()
    names = sorted({a.name for a in trace.gpu_annotations} | {trace.strings[c] for c in annotations})
    hint = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
    raise UserError(f"{trace.path}: no annotation named {name!r} for --window (available: {hint or 'none'})")


def _earliest(annotations: list[Event], name: str) -> Event | None:
    found = [a for a in annotations if a.name == name]
    return min(found, key=lambda a: a.ts) if found else None
