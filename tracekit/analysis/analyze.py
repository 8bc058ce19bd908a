"""Attribute device time to categories, per window, phase and decode step.

On GPU traces the device work is kernels, memcpy and memset, each linked to its launching host
span; on CPU-only traces the device is the CPU and the work is each operator's self time.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from tracekit.analysis.attribute import Classifier
from tracekit.analysis.intervals import overlap, union_length
from tracekit.analysis.phases import PhaseKey, parse_phase
from tracekit.analysis.rules import CATEGORIES
from tracekit.errors import UserError
from tracekit.trace.model import OP_CATS, Event, Trace

SCHEMA = "tracekit.analysis/1"


@dataclass
class CategoryTime:
    time_us: float = 0.0
    count: int = 0


@dataclass
class Window:
    name: str
    start_us: float
    dur_us: float


@dataclass
class PhaseResult:
    phase: str
    step: int | None
    context_tokens: int | None
    time_us: float
    span_us: float
    busy_us: float
    idle_us: float
    start_us: float
    categories: dict[str, CategoryTime]


@dataclass
class KernelRow:
    name: str
    category: str
    rule: str
    count: int
    time_us: float


@dataclass
class AnalysisResult:
    path: str
    device: Literal["gpu", "cpu"]
    window: Window
    busy_us: float
    idle_us: float
    categories: dict[str, CategoryTime]
    phases: list[PhaseResult]
    kernels: list[KernelRow]
    kernels_by_phase: dict[str, list[KernelRow]] = field(default_factory=dict)
    partial: bool = False
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_us(self) -> float:
        return sum(c.time_us for c in self.categories.values())

    def to_json(self) -> dict[str, Any]:
        def cats(d: dict[str, CategoryTime]) -> dict[str, Any]:
            return {k: {"time_us": round(v.time_us, 3), "count": v.count} for k, v in d.items()}

        out: dict[str, Any] = {
            "path": self.path,
            "device": self.device,
            "window": {
                "name": self.window.name,
                "start_us": self.window.start_us,
                "dur_us": round(self.window.dur_us, 3),
            },
            "busy_us": round(self.busy_us, 3),
            "idle_us": round(self.idle_us, 3),
            "categories": cats(self.categories),
            "phases": [
                {
                    "phase": p.phase,
                    "step": p.step,
                    "context_tokens": p.context_tokens,
                    "time_us": round(p.time_us, 3),
                    "span_us": round(p.span_us, 3),
                    "busy_us": round(p.busy_us, 3),
                    "idle_us": round(p.idle_us, 3),
                    "categories": cats(p.categories),
                }
                for p in self.phases
            ],
            "partial": self.partial,
        }
        if self.extra:
            out.update(self.extra)
        return out


def work_items(trace: Trace) -> Iterator[tuple[Event, float, int]]:
    """Device work as (event, device time, host span for scopes and phases).

    On GPU traces: kernels, memcpy and memset with their duration and launching runtime call.
    On CPU-only traces: every operator with its self time, scoped by itself and its ancestors.
    """
    if trace.device:
        for d in trace.device:
            yield d, d.dur, d.tk_link
    else:
        for i, h in enumerate(trace.host):
            if h.cat in OP_CATS:
                yield h, max(0.0, h.dur - h.tk_child), i


class PhaseIndex:
    """Finds the phase of a host span (nearest phase annotation above it), memoized per span."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._memo: dict[int, tuple[PhaseKey, int] | None] = {}
        gpu = [(a.ts, a.ts + a.dur, parse_phase(a.name)) for a in trace.gpu_annotations]
        self._gpu = sorted([(s, e, k) for s, e, k in gpu if k is not None], key=lambda t: t[0])
        self._gpu_starts = [s for s, _, _ in self._gpu]

    def of_node(self, node: int) -> tuple[PhaseKey, int] | None:
        host = self.trace.host
        chain: list[int] = []
        n = node
        found: tuple[PhaseKey, int] | None = None
        while n >= 0:
            if n in self._memo:
                found = self._memo[n]
                break
            chain.append(n)
            key = parse_phase(host[n].name)
            if key is not None:
                found = (key, n)
                break
            n = host[n].tk_parent
        for m in chain:
            self._memo[m] = found
        return found

    def of_time(self, ts: float) -> PhaseKey | None:
        """For unlinked device work (CUDA graphs): the GPU-side phase annotation containing ``ts``."""
        i = bisect.bisect_right(self._gpu_starts, ts) - 1
        while i >= 0:
            s, e, k = self._gpu[i]
            if s <= ts < e:
                return k
            if e < ts - 1e7:
                break
            i -= 1
        return None


def find_window(trace: Trace, name: str | None) -> Window:
    if name is None:
        if trace.kind == "gpu":
            s = min(d.ts for d in trace.device)
            e = max(d.ts + d.dur for d in trace.device)
        else:
            ops = [h for h in trace.host if h.cat in ("cpu_op", "Operator", "user_annotation")] or trace.host
            s = min(h.ts for h in ops)
            e = max(h.ts + h.dur for h in ops)
        return Window("whole trace", s, e - s)
    pools = [trace.gpu_annotations, trace.host] if trace.kind == "gpu" else [trace.host]
    for pool in pools:
        for a in pool:
            if a.name == name:
                return Window(name, a.ts, a.dur)
    names = sorted({a.name for a in trace.gpu_annotations} | {h.name for h in trace.host if h.cat == "user_annotation"})
    hint = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
    raise UserError(f"{trace.path}: no annotation named {name!r} for --window (available: {hint or 'none'})")


def analyze_trace(trace: Trace, window: str | None = None, *, classifier: Classifier | None = None) -> AnalysisResult:
    """Attribute the device time of ``trace`` (within ``window``, an annotation name) to categories."""
    clf = classifier or Classifier(trace)
    win = find_window(trace, window)
    lo, hi = win.start_us, win.start_us + win.dur_us
    whole = window is None
    phases = PhaseIndex(trace)
    categories: dict[str, CategoryTime] = {c: CategoryTime() for c in CATEGORIES}
    kernels: dict[tuple[str, str, str], KernelRow] = {}
    by_phase: dict[PhaseKey, dict[str, CategoryTime]] = {}
    phase_kernels: dict[tuple[str, str, str, str], KernelRow] = {}
    phase_units: dict[PhaseKey, list[tuple[float, float]]] = {}
    phase_spans: dict[PhaseKey, tuple[float, float]] = {}
    busy_intervals: list[tuple[float, float]] = []
    gpu = trace.kind == "gpu"

    classify = clf.classify
    of_node = phases.of_node
    for ev, t, node in work_items(trace):
        ts = ev.ts
        end = ts + ev.dur
        if not whole:
            if gpu:
                t = overlap(ts, end, lo, hi)
                if t <= 0.0 and not (lo <= ts <= hi):
                    continue
            elif not (lo <= ts < hi):
                continue
        att = classify(ev.name, node)
        c = categories[att.category]
        c.time_us += t
        c.count += 1
        kkey = (ev.name, att.category, att.rule)
        row = kernels.get(kkey)
        if row is None:
            row = kernels[kkey] = KernelRow(ev.name, att.category, att.rule, 0, 0.0)
        row.count += 1
        row.time_us += t
        if gpu:
            busy_intervals.append((ts, end))
        hit = of_node(node) if node >= 0 else None
        key = hit[0] if hit else (phases.of_time(ts) if gpu else None)
        if key is not None:
            pc = by_phase.get(key)
            if pc is None:
                pc = by_phase[key] = {}
                phase_units[key] = []
            if hit and key not in phase_spans:
                # The host span of the phase annotation: the step as the program lived it, so host
                # overhead between kernels (a launch-bound decode) shows up as device idle time.
                h = trace.host[hit[1]]
                phase_spans[key] = (h.ts, h.ts + h.dur)
            pcat = pc.get(att.category)
            if pcat is None:
                pcat = pc[att.category] = CategoryTime()
            pcat.time_us += t
            pcat.count += 1
            phase_units[key].append((ts, end))
            pk = (key.phase, *kkey)
            prow = phase_kernels.get(pk)
            if prow is None:
                prow = phase_kernels[pk] = KernelRow(ev.name, att.category, att.rule, 0, 0.0)
            prow.count += 1
            prow.time_us += t

    if not gpu:
        tops = [(h.ts, h.ts + h.dur) for h in trace.host if h.cat in OP_CATS]
        busy_intervals = tops
    busy = union_length(busy_intervals, lo, hi)

    if gpu:
        for a in trace.gpu_annotations:
            k = parse_phase(a.name)
            if k is not None and k in by_phase and k not in phase_spans:
                phase_spans[k] = (a.ts, a.ts + a.dur)
    results: list[PhaseResult] = []
    cpu_tops = busy_intervals if not gpu else []
    for key, cats in by_phase.items():
        units = phase_units[key]
        first, last = min(a for a, _ in units), max(b for _, b in units)
        s, e = phase_spans.get(key, (first, last))
        if gpu:
            # Device work can outlast its host span (asynchronous launches): the step ends with its work.
            s, e = min(s, first), max(e, last)
        span = e - s
        pbusy = union_length(cpu_tops if not gpu else units, s, e)
        results.append(
            PhaseResult(
                phase=key.phase,
                step=key.step,
                context_tokens=key.context_tokens,
                time_us=sum(c.time_us for c in cats.values()),
                span_us=span,
                busy_us=pbusy,
                idle_us=max(0.0, span - pbusy),
                start_us=s,
                categories=cats,
            )
        )
    results.sort(key=lambda p: p.start_us)
    res = AnalysisResult(
        path=trace.path,
        device=trace.kind,
        window=win,
        busy_us=busy,
        idle_us=max(0.0, win.dur_us - busy),
        categories={k: v for k, v in categories.items() if v.count or k in CATEGORIES},
        phases=results,
        kernels=sorted(kernels.values(), key=lambda r: -r.time_us),
        kernels_by_phase=_group_by_phase(phase_kernels),
        partial=trace.partial,
    )
    if trace.partial:
        res.warnings.append(f"{trace.path}: trace is truncated; analyzed the usable prefix only")
    if trace.skipped_events:
        res.warnings.append(f"{trace.path}: skipped {trace.skipped_events} malformed events")
    return res


def _group_by_phase(rows: dict[tuple[str, str, str, str], KernelRow]) -> dict[str, list[KernelRow]]:
    out: dict[str, list[KernelRow]] = {}
    for (phase, *_), row in rows.items():
        out.setdefault(phase, []).append(row)
    for lst in out.values():
        lst.sort(key=lambda r: -r.time_us)
    return out
