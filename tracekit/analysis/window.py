"""Which stretch of a trace to analyze: the whole trace, or the span of one named annotation.

On GPU traces an annotation has two sides: the host span (when the program ran it) and, written
by the profiler, a device-side span (``gpu_user_annotation``) meant to cover the device work
launched within it. CUDA's does (it is exactly that work's extent); ROCm writes ~17 µs ones that
cover almost nothing. So the device side is used only where it covers the work launched from
within the host span; otherwise the window is that work's extent, taken from the host side.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from tracekit.errors import InputError
from tracekit.trace.model import Trace
from tracekit.trace.tree import nearest_marked

# On CPU-only traces the whole-trace window spans the operators and annotations (not Python frames).
_CPU_WINDOW_CATS = frozenset({"cpu_op", "Operator", "user_annotation"})
# How much of the launched work a device-side annotation must overlap to be trusted.
COVER = 0.99


# "trace" (the whole trace), "device" (a device-side annotation), "host" (from the host span: the
# device work launched within it on GPU traces, the span itself on CPU traces), "phase" (first to
# last step of one phase), "sum" (every window a pattern matched, summed by --window-all)
WindowSource = Literal["trace", "device", "host", "phase", "sum"]


@dataclass
class Window:
    name: str
    start_us: float
    dur_us: float
    source: WindowSource = "trace"
    # How the window was chosen when that needs saying: how many annotations the pattern
    # matched and which one was taken (or that all were summed).
    note: str = ""

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


_DIGITS = re.compile(r"(\d+)")
# Names listed in an error before "... and N more"
LISTED = 10


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key that orders numbers by value (``#2`` before ``#10``), text as text."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name) if part]


def annotation_counts(trace: Trace) -> dict[str, int]:
    """Every annotation name of the trace (host ``user_annotation`` spans, and GPU-side annotations
    whose name no host span has) with how often it occurs, in natural order."""
    mask = trace.host_mask(frozenset({"user_annotation"}))
    counts = Counter(trace.strings[int(c)] for c in trace.spans.name[mask].tolist())
    for name, n in Counter(a.name for a in trace.gpu_annotations).items():
        counts.setdefault(name, n)
    return {name: counts[name] for name in sorted(counts, key=natural_key)}


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def matching_names(trace: Trace, pattern: str) -> list[str]:
    """The annotation names ``pattern`` names: itself where an annotation has that name, else every
    name it matches as a shell-style pattern (``ProfilerStep#*``, ``*decode*``), in natural order."""
    counts = annotation_counts(trace)
    if pattern in counts or trace.code(pattern) >= 0:
        return [pattern]
    if not _is_pattern(pattern):
        return []
    return [n for n in counts if fnmatch.fnmatchcase(n, pattern)]


def _occurrences(trace: Trace, name: str) -> list[Window]:
    """A window for every annotation called ``name``, in time order."""
    spans = trace.spans
    code = trace.code(name)
    hosts = np.flatnonzero(spans.name == code).tolist() if code >= 0 else []
    annotations = trace.host_mask(frozenset({"user_annotation"}))
    hosts = [h for h in hosts if annotations[h]] or hosts
    out = [_window_at(trace, name, int(h)) for h in hosts]
    if not out and trace.kind == "gpu":
        out = [Window(name, a.ts, a.dur, "device") for a in trace.gpu_annotations if a.name == name]
    return sorted(out, key=lambda w: w.start_us)


def _window_at(trace: Trace, name: str, host: int) -> Window:
    spans = trace.spans
    if trace.kind == "gpu":
        extent = launched_extent(trace, host)
        devices = [a for a in trace.gpu_annotations if a.name == name]
        for device in devices:
            if extent is not None and covers(device.ts, device.ts + device.dur, extent):
                return Window(name, device.ts, device.dur, "device")
        if extent is None and len(devices) == 1:
            return Window(name, devices[0].ts, devices[0].dur, "device")
        if extent is not None:
            return Window(name, extent[0], extent[1] - extent[0], "host")
    return Window(name, float(spans.ts[host]), float(spans.dur[host]), "host")


def find_windows(trace: Trace, pattern: str) -> list[Window]:
    """Every window ``pattern`` names (an annotation name, or a shell-style pattern over the
    names), in time order; an ``InputError`` listing the names (natural order) when none matches."""
    names = matching_names(trace, pattern)
    found = sorted((w for n in names for w in _occurrences(trace, n)), key=lambda w: w.start_us)
    if not found:
        counts = annotation_counts(trace)
        listed = list(counts)[:LISTED]
        more = f" ... and {len(counts) - LISTED} more; --list-windows lists them all" if len(counts) > LISTED else ""
        hint = ", ".join(listed) + more
        what = "matches" if _is_pattern(pattern) else "named"
        raise InputError(
            trace.path,
            f"no annotation {what} {pattern!r} for --window (available: {hint or 'none'})",
            kind="no-window",
        )
    return found


def merged_window(windows: list[Window], pattern: str) -> list[Window]:
    """The windows with overlapping ones joined (so nested or repeated spans count once)."""
    out: list[Window] = []
    for w in sorted(windows, key=lambda w: w.start_us):
        if out and w.start_us <= out[-1].end_us:
            last = out[-1]
            out[-1] = Window(pattern, last.start_us, max(last.end_us, w.end_us) - last.start_us, last.source)
        else:
            out.append(w)
    return out


def find_window(trace: Trace, name: str | None) -> Window:
    """The whole trace (``name`` None), else the earliest annotation ``name`` names (its own name,
    or a shell-style pattern): on GPU traces its device-side span where that covers the work
    launched within the host span, else that work's extent; on CPU traces (or with no work
    launched within) its host span. When several match, its ``note`` says how many and which."""
    spans = trace.spans
    if name is None:
        if trace.kind == "gpu":
            cols = trace.kernels
        else:
            mask = trace.host_mask(_CPU_WINDOW_CATS)
            cols = spans.take(np.flatnonzero(mask)) if mask.any() else spans
        s, e = float(cols.ts.min()), float(cols.end.max())
        return Window("whole trace", s, e - s)
    found = find_windows(trace, name)
    first = found[0]
    if len(found) > 1:
        first.note = (
            f"window {name!r} matched {len(found)} annotations; took the earliest, {first.name} "
            "(--window-all sums them, --list-windows lists them)"
        )
    return first
