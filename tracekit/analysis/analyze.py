"""Attribute device time to categories, per window, phase and decode step.

On GPU traces the device work is kernels, memcpy and memset, each linked to its launching host
span; on CPU-only traces the device is the CPU and the work is each operator's self time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tracekit.analysis.attribute import Attribution, Classifier
from tracekit.analysis.intervals import union_length_arrays
from tracekit.analysis.phases import PhaseKey, parse_phase
from tracekit.analysis.rules import CATEGORIES
from tracekit.errors import UserError
from tracekit.trace.model import OP_CATS, Trace
from tracekit.trace.tree import nearest_marked

_CPU_WINDOW_CATS = frozenset({"cpu_op", "Operator", "user_annotation"})
_NAME = attrgetter("name")
_TS = attrgetter("ts")
_DUR = attrgetter("dur")

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


class PhaseIndex:
    """The phase of each host span: the nearest phase annotation at or above it."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        n = len(trace.spans)
        # The phase each string denotes (most denote none).
        self.key_of: list[PhaseKey | None] = [parse_phase(s) for s in trace.strings]
        marked = np.fromiter((k is not None for k in self.key_of), bool, len(self.key_of))[trace.spans.name]
        node = np.full(n + 1, -1, np.int64)
        node[:n] = nearest_marked(trace.parent, marked)
        self.node = node  # index n (no span) reads -1
        gpu = [(a.ts, a.ts + a.dur, parse_phase(a.name)) for a in trace.gpu_annotations]
        self._gpu = sorted([(s, e, k) for s, e, k in gpu if k is not None], key=lambda t: t[0])
        self._gpu_starts = [s for s, _, _ in self._gpu]

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
                return Window(name, a.ts, a.dur)
    hit = np.flatnonzero(spans.name == trace.code(name))
    if hit.size:
        i = int(hit[0])
        return Window(name, float(spans.ts[i]), float(spans.dur[i]))
    annotations = np.unique(spans.name[trace.host_mask(frozenset({"user_annotation"}))]).tolist()
    names = sorted({a.name for a in trace.gpu_annotations} | {trace.strings[c] for c in annotations})
    hint = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
    raise UserError(f"{trace.path}: no annotation named {name!r} for --window (available: {hint or 'none'})")


@dataclass
class _Work:
    """The device work of a trace as columns: name (string code), start, end, device time, host span."""

    name: NDArray[np.int64]
    ts: NDArray[np.float64]
    end: NDArray[np.float64]
    time: NDArray[np.float64]
    node: NDArray[np.int64]

    def select(self, keep: NDArray[np.bool_]) -> _Work:
        return _Work(self.name[keep], self.ts[keep], self.end[keep], self.time[keep], self.node[keep])


def _work(trace: Trace) -> _Work:
    """On GPU traces: kernels, memcpy and memset with their duration and launching runtime call.
    On CPU-only traces: every operator with its self time, scoped by itself and its ancestors."""
    if len(trace.kernels):
        k = trace.kernels
        return _Work(k.name, k.ts, k.end, k.dur, trace.link)
    ops = np.flatnonzero(trace.host_mask(OP_CATS))
    c = trace.spans.take(ops)
    return _Work(c.name, c.ts, c.end, np.maximum(0.0, c.dur - trace.child[ops]), ops.astype(np.int64))


def _sums(index: NDArray[np.int64], weights: NDArray[np.float64], size: int) -> tuple[list[float], list[int]]:
    return (
        np.bincount(index, weights=weights, minlength=size).tolist(),
        np.bincount(index, minlength=size).tolist(),
    )


def analyze_trace(trace: Trace, window: str | None = None, *, classifier: Classifier | None = None) -> AnalysisResult:
    """Attribute the device time of ``trace`` (within ``window``, an annotation name) to categories."""
    clf = classifier or Classifier(trace)
    win = find_window(trace, window)
    lo, hi = win.start_us, win.start_us + win.dur_us
    gpu = trace.kind == "gpu"
    w = _work(trace)
    if window is not None:
        if gpu:
            t = np.maximum(0.0, np.minimum(w.end, hi) - np.maximum(w.ts, lo))
            keep = (t > 0.0) | ((lo <= w.ts) & (w.ts <= hi))
            w.time = t
        else:
            keep = (lo <= w.ts) & (w.ts < hi)
        w = w.select(keep)

    # Classify: one code per distinct (name, operator, scopes); a category index per code.
    codes, atts = clf.classify_many(w.name, w.node)
    cat_names = list(CATEGORIES) + sorted({a.category for a in atts} - set(CATEGORIES))
    cat_ix = {c: i for i, c in enumerate(cat_names)}
    code_cat = np.fromiter((cat_ix[a.category] for a in atts), np.int64, len(atts))
    item_cat = code_cat[codes] if len(codes) else np.zeros(0, np.int64)
    ncat = len(cat_names)
    times, counts = _sums(item_cat, w.time, ncat)
    categories = {c: CategoryTime(times[i], counts[i]) for i, c in enumerate(cat_names)}

    # Per-kernel rows: codes that share (name, category, rule) merge, in order of first appearance.
    ctimes, ccounts = _sums(codes, w.time, len(atts))
    first_name = _first_names(codes, w.name, trace.strings, len(atts))
    kernels: dict[tuple[str, str, str], KernelRow] = {}
    for c, att in enumerate(atts):
        kkey = (first_name[c], att.category, att.rule)
        row = kernels.get(kkey)
        if row is None:
            row = kernels[kkey] = KernelRow(kkey[0], att.category, att.rule, 0, 0.0)
        row.count += ccounts[c]
        row.time_us += ctimes[c]

    if gpu:
        busy = union_length_arrays(w.ts, w.end, lo, hi)
        cpu_s = cpu_e = np.zeros(0)
    else:
        # Every operator (nested ones too: the union is the same) is CPU work.
        all_ops = _work(trace)
        cpu_s, cpu_e = all_ops.ts, all_ops.end
        busy = union_length_arrays(cpu_s, cpu_e, lo, hi)

    results, phase_kernels = _phases(trace, clf, w, codes, atts, item_cat, cat_names, gpu, cpu_s, cpu_e)
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


def _first_names(codes: NDArray[np.int64], names: NDArray[np.int64], strings: list[str], ncodes: int) -> list[str]:
    """The work name of each code (a code's items all share their name)."""
    if ncodes == 0:
        return []
    _, first = np.unique(codes, return_index=True)
    return list(map(strings.__getitem__, names[first].tolist()))


def _phases(
    trace: Trace,
    clf: Classifier,
    w: _Work,
    codes: NDArray[np.int64],
    atts: list[Attribution],
    item_cat: NDArray[np.int64],
    cat_names: list[str],
    gpu: bool,
    cpu_s: NDArray[np.float64],
    cpu_e: NDArray[np.float64],
) -> tuple[list[PhaseResult], dict[tuple[str, str, str, str], KernelRow]]:
    """Group the work by phase (prefill chunk, decode step, profiler step) and sum each group."""
    index = PhaseIndex(trace)
    n_host = len(trace.spans)
    at = np.where(w.node >= 0, w.node, n_host)
    pnode = index.node[at]
    # Phase key per item: from the annotation above its launch, else (GPU) from the time it ran.
    key_ids: dict[PhaseKey, int] = {}
    node_key: dict[int, int] = {}
    span_names = trace.spans.name
    for nd in dict.fromkeys(pnode[pnode >= 0].tolist()):
        k = index.key_of[int(span_names[nd])]
        assert k is not None
        node_key[nd] = key_ids.setdefault(k, len(key_ids))
    item_key = np.full(len(w.name), -1, np.int64)
    hit = pnode >= 0
    if node_key:
        lut = np.full(n_host + 1, -1, np.int64)
        lut[np.fromiter(node_key.keys(), np.int64, len(node_key))] = np.fromiter(node_key.values(), np.int64)
        item_key[hit] = lut[pnode[hit]]
    if gpu and index._gpu:
        for i in np.flatnonzero(~hit).tolist():
            k = index.of_time(float(w.ts[i]))
            if k is not None:
                item_key[i] = key_ids.setdefault(k, len(key_ids))
    keys = list(key_ids)
    nkeys = len(keys)
    if nkeys == 0:
        return [], {}
    has = item_key >= 0
    ik = item_key[has]
    ic = item_cat[has]
    it = w.time[has]
    ncat = len(cat_names)
    ptimes, pcounts = _sums(ik * ncat + ic, it, nkeys * ncat)
    # The host span of the phase annotation (the step as the program lived it, so host overhead
    # between kernels shows up as device idle time): the first item found through it gives it.
    spans: dict[int, tuple[float, float]] = {}
    hit_items = np.flatnonzero(hit & has)
    if hit_items.size:
        kid, first = np.unique(item_key[hit_items], return_index=True)
        for k_, i in zip(kid.tolist(), hit_items[first].tolist()):
            h = int(pnode[i])
            spans[k_] = (float(trace.spans.ts[h]), float(trace.spans.end[h]))
    if gpu:
        for a in trace.gpu_annotations:
            k = parse_phase(a.name)
            if k is not None and k in key_ids and key_ids[k] not in spans:
                spans[key_ids[k]] = (a.ts, a.ts + a.dur)
    order = np.argsort(ik, kind="stable")
    bounds = np.searchsorted(ik[order], np.arange(nkeys + 1))
    ts_sorted = w.ts[has][order]
    end_sorted = w.end[has][order]
    results: list[PhaseResult] = []
    for kid_, key in enumerate(keys):
        lo_i, hi_i = int(bounds[kid_]), int(bounds[kid_ + 1])
        us, ue = ts_sorted[lo_i:hi_i], end_sorted[lo_i:hi_i]
        first_t, last_t = float(us.min()), float(ue.max())
        s, e = spans.get(kid_, (first_t, last_t))
        if gpu:
            # Device work can outlast its host span (asynchronous launches): the step ends with its work.
            s, e = min(s, first_t), max(e, last_t)
            pbusy = union_length_arrays(us, ue, s, e)
        else:
            pbusy = union_length_arrays(cpu_s, cpu_e, s, e)
        cats = {
            cat_names[c]: CategoryTime(ptimes[kid_ * ncat + c], pcounts[kid_ * ncat + c])
            for c in range(ncat)
            if pcounts[kid_ * ncat + c]
        }
        results.append(
            PhaseResult(
                phase=key.phase,
                step=key.step,
                context_tokens=key.context_tokens,
                time_us=sum(c.time_us for c in cats.values()),
                span_us=e - s,
                busy_us=pbusy,
                idle_us=max(0.0, (e - s) - pbusy),
                start_us=s,
                categories=cats,
            )
        )
    results.sort(key=lambda p: p.start_us)
    # Kernel rows per phase name.
    ncodes = len(atts)
    combo = ik * ncodes + codes[has]
    uniq, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
    ktimes, kcounts = _sums(inverse.astype(np.int64), it, len(uniq))
    names_has = w.name[has]
    phase_kernels: dict[tuple[str, str, str, str], KernelRow] = {}
    for j in np.argsort(first, kind="stable").tolist():
        kid_, c = divmod(int(uniq[j]), ncodes)
        att = atts[c]
        pk = (keys[kid_].phase, trace.strings[int(names_has[int(first[j])])], att.category, att.rule)
        prow = phase_kernels.get(pk)
        if prow is None:
            prow = phase_kernels[pk] = KernelRow(pk[1], att.category, att.rule, 0, 0.0)
        prow.count += kcounts[j]
        prow.time_us += ktimes[j]
    return results, phase_kernels


def _group_by_phase(rows: dict[tuple[str, str, str, str], KernelRow]) -> dict[str, list[KernelRow]]:
    out: dict[str, list[KernelRow]] = {}
    for (phase, *_), row in rows.items():
        out.setdefault(phase, []).append(row)
    for lst in out.values():
        lst.sort(key=lambda r: -r.time_us)
    return out
