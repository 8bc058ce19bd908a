"""Attribution: one table of a trace's device work, each item classified once.

Every figure tracekit gives (``analyze``, the report, the Perfetto tags) is a sum over this table,
so they cannot disagree. "Device work" is defined here only:

* on GPU traces: kernels, memcpy and memset, each with its duration and launching runtime call;
* on CPU-only traces: every operator, with its self time (the CPU is the device), scoped by itself
  and the spans above it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from tracekit.analysis.classify import Classifier, Decision
from tracekit.analysis.phases import PhaseIndex
from tracekit.analysis.rules import CATEGORIES
from tracekit.analysis.window import Window
from tracekit.annotations import PhaseKey
from tracekit.trace.model import OP_CATS, Codes, Trace

# The columns with one row an item (a selection takes each alike); busy_ts/busy_end are per item on
# a GPU only, so each selection says what becomes of them.
_ITEM_COLUMNS = ("origin", "name", "ts", "end", "time", "node", "graph", "code", "category", "phase", "phase_node")


@dataclass
class Attribution:
    """The device work of one trace as columns, one row an item.

    ``code`` numbers the distinct (name, launching operator, scope set) triples; ``decisions[code]``
    is what the rule table said of each, ``category`` the index of its category in ``categories``.
    ``phase`` indexes ``phase_keys`` (-1: no phase), through ``phase_node``, the host phase
    annotation above the launch (-1: none; the phase then came from the GPU-side annotation the
    work ran in). ``busy_ts``/``busy_end`` are the intervals that count as the device being busy:
    the items themselves on GPU traces, every operator (nested ones too) on CPU traces.
    """

    trace: Trace
    device: Literal["gpu", "cpu"]
    origin: NDArray[np.integer[Any]]  # position of the item's event in the file
    name: Codes  # into trace.strings
    ts: NDArray[np.float64]
    end: NDArray[np.float64]
    time: NDArray[np.float64]  # device time: duration (GPU), self time (CPU); clipped by ``within``
    node: NDArray[np.int64]  # launching host span, -1: none in the trace
    graph: NDArray[np.bool_]  # replayed from a CUDA/HIP graph (launched by cudaGraphLaunch/hipGraphLaunch)
    code: NDArray[np.int64]
    category: NDArray[np.int64]
    phase: NDArray[np.int64]
    phase_node: NDArray[np.int64]
    decisions: list[Decision]
    categories: list[str]
    phase_keys: list[PhaseKey]
    phase_ranges: dict[PhaseKey, tuple[float, float]]  # each phase's device-side span (see PhaseIndex)
    busy_ts: NDArray[np.float64]
    busy_end: NDArray[np.float64]
    window: Window | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def in_phase(self, phase: str) -> Attribution:
        """The items of every phase called ``phase`` (``decode``: every decode step)."""
        names = np.array([k.phase == phase for k in self.phase_keys] + [False], bool)
        keep = names[self.phase]  # -1 (no phase) reads the trailing False
        gpu = self.device == "gpu"
        return self._take(
            keep,
            busy_ts=self.busy_ts[keep] if gpu else self.busy_ts,
            busy_end=self.busy_end[keep] if gpu else self.busy_end,
        )

    def within(self, window: Window) -> Attribution:
        """The items in ``window``. GPU work is clipped to it (work that merely starts on its edge
        stays, with no time); CPU operators count when they start inside it."""
        lo, hi = window.start_us, window.end_us
        if self.device == "gpu":
            clipped = np.maximum(0.0, np.minimum(self.end, hi) - np.maximum(self.ts, lo))
            keep = (clipped > 0.0) | ((lo <= self.ts) & (self.ts <= hi))
            time = clipped[keep]
            busy_ts, busy_end = self.ts[keep], self.end[keep]
        else:
            keep = (lo <= self.ts) & (self.ts < hi)
            time = self.time[keep]
            busy_ts, busy_end = self.busy_ts, self.busy_end
        return self._take(keep, time=time, busy_ts=busy_ts, busy_end=busy_end, window=window)

    def _take(self, keep: NDArray[np.bool_], **changes: Any) -> Attribution:
        """The items ``keep`` selects, every per-item column alike, with ``changes`` on top."""
        return replace(self, **{**{f: getattr(self, f)[keep] for f in _ITEM_COLUMNS}, **changes})


def attribute(trace: Trace, classifier: Classifier | None = None) -> Attribution:
    """Classify every item of device work in ``trace`` and find its phase."""
    clf = classifier or Classifier(trace)
    if len(trace.kernels):
        k = trace.kernels
        device: Literal["gpu", "cpu"] = "gpu"
        origin, name, ts, end, time, node = k.origin, k.name, k.ts, k.end, k.dur, trace.link
        busy_ts, busy_end = ts, end
    else:
        ops = np.flatnonzero(trace.host_mask(OP_CATS))
        c = trace.spans.take(ops)
        device = "cpu"
        origin, name, ts, end = c.origin, c.name, c.ts, c.end
        time = np.maximum(0.0, c.dur - trace.child[ops])
        node = ops.astype(np.int64)
        busy_ts, busy_end = ts, end
    graph = np.append(clf.graph, False)[np.where(node >= 0, node, len(clf.graph))]  # -1 reads the False slot
    code, decisions = clf.classify_many(name, node)
    del clf, classifier  # a classifier made here holds arrays over every host span: free them first
    categories = list(CATEGORIES) + sorted({d.category for d in decisions} - set(CATEGORIES))
    index = {c: i for i, c in enumerate(categories)}
    code_category = np.fromiter((index[d.category] for d in decisions), np.int64, len(decisions))
    category = code_category[code] if len(code) else np.zeros(0, np.int64)
    phase, phase_node, phase_keys, ranges = _phases(trace, node, ts, device)
    return Attribution(
        trace=trace,
        device=device,
        origin=origin,
        name=name,
        ts=ts,
        end=end,
        time=time,
        node=node,
        graph=graph,
        code=code,
        category=category,
        phase=phase,
        phase_node=phase_node,
        decisions=decisions,
        categories=categories,
        phase_keys=phase_keys,
        phase_ranges=ranges,
        busy_ts=busy_ts,
        busy_end=busy_end,
    )


def _phases(
    trace: Trace, node: NDArray[np.int64], ts: NDArray[np.float64], device: str
) -> tuple[NDArray[np.int64], NDArray[np.int64], list[PhaseKey], dict[PhaseKey, tuple[float, float]]]:
    """Each item's phase (an index into the returned keys, -1: none), the host phase annotation
    it came through (-1: none), and each phase's device-side span."""
    index = PhaseIndex(trace)
    n_host = len(trace.spans)
    phase_node = index.node[np.where(node >= 0, node, n_host)]
    key_ids: dict[PhaseKey, int] = {}
    # The phase key of every host span that is a phase annotation, as a lookup table by span.
    lut = np.full(n_host + 1, -1, np.int64)
    nodes = np.flatnonzero(np.bincount(phase_node[phase_node >= 0], minlength=n_host))
    for nd in nodes.tolist():
        lut[nd] = key_ids.setdefault(index.key_at(nd), len(key_ids))
    phase = lut[phase_node]
    if device == "gpu":
        loose = np.flatnonzero(phase_node < 0)
        at = index.at_times(ts[loose])
        found = at >= 0
        spans_hit, first = np.unique(at[found], return_index=True)
        local = np.full(len(index.gpu_keys), -1, np.int64)
        for j in spans_hit[np.argsort(first, kind="stable")].tolist():  # keys numbered as first met
            local[j] = key_ids.setdefault(index.gpu_keys[j], len(key_ids))
        phase[loose[found]] = local[at[found]]
    return phase, phase_node, list(key_ids), index.ranges
