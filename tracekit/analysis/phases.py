"""Phases and steps: which prefill chunk, decode step or profiler step a piece of device work belongs to.

The names are the annotation vocabulary's (``tracekit.annotations.parse_phase``). Work linked to a
launch takes the phase annotation nearest above its launch on the host; other work (no launch in
the trace, or launched from another thread, such as autograd's backward) takes the phase whose
device-side span it ran inside, if any. A phase's device-side span is its GPU-side annotation
where that covers the work launched from within the host annotation (CUDA's do), else the
extent of that work (ROCm writes ~17 µs ones; traces without GPU annotations have none).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from tracekit.analysis.window import covers, launched_extents
from tracekit.annotations import (
    ENCLOSING_SOURCES,
    MERGING_SOURCES,
    NESTED_SOURCES,
    PhaseKey,
    merge_context,
    parse_phase,
)
from tracekit.trace.model import Trace
from tracekit.trace.tree import nearest_marked


def numbered(key: PhaseKey, ordinal: int) -> PhaseKey:
    """``key``, numbered by ``ordinal`` if its annotation carries no step number of its own."""
    return key if key.step is not None else replace(key, step=ordinal)


class PhaseIndex:
    """The phase annotations of one trace: for host spans (``node``) and for device times (``at_times``)."""

    def __init__(self, trace: Trace) -> None:
        n = len(trace.spans)
        # The phase each string denotes (most denote none).
        self.key_of: list[PhaseKey | None] = [parse_phase(s) for s in trace.strings]
        marked = np.fromiter((k is not None for k in self.key_of), bool, len(self.key_of))[trace.spans.name]
        # Spans whose key takes the context of an engine step annotation nested inside it.
        self._merged: dict[int, PhaseKey] = self._merge_nested(trace, marked)
        self._marks = np.flatnonzero(marked)  # the host spans that are phase annotations
        node = np.full(n + 1, -1, np.int64)
        node[:n] = nearest_marked(trace.parent, marked)
        self.node = node  # the phase annotation at or above each host span; index n (no span) reads -1
        # Engines' step annotations carry no number ("execute_model"): each one is numbered by its
        # place among all such annotations, in time order (a GPU-side twin takes its host's number).
        self._ordinal: dict[int, int] = {}
        by_time = self._marks[np.argsort(trace.spans.ts[self._marks], kind="stable")]
        for h, code in zip(by_time.tolist(), trace.spans.name[by_time].tolist()):
            key = self.key_of[code]
            if key is not None and key.step is None:
                self._ordinal[h] = len(self._ordinal)
        self._names = trace.spans.name
        gpu = sorted(self._device_spans(trace), key=lambda t: t[0])
        self.ranges: dict[PhaseKey, tuple[float, float]] = {}
        for s, e, k in gpu:
            self.ranges.setdefault(k, (s, e))
        self.gpu_starts = np.array([s for s, _, _ in gpu], np.float64)
        self.gpu_ends = np.array([e for _, e, _ in gpu], np.float64)
        self.gpu_keys = [k for _, _, k in gpu]
        # The latest end among the annotations that start at or before each one: a time past it
        # lies in none of them, so the walk in ``at_times`` stops at once.
        self._reach = np.maximum.accumulate(self.gpu_ends) if len(gpu) else self.gpu_ends

    def key_at(self, span: int) -> PhaseKey:
        """The phase that host annotation ``span`` denotes (an unnumbered step gets its ordinal)."""
        key = self._merged.get(span) or self.key_of[int(self._names[span])]
        assert key is not None
        return numbered(key, self._ordinal.get(span, 0))

    def _merge_nested(self, trace: Trace, marked: NDArray[np.bool_]) -> dict[int, PhaseKey]:
        """One step annotated twice: an engine step annotation inside another (SGLang with
        TraceLens's patch writes ``execute_...`` around ``step[...]``) is unmarked in ``marked``
        and its context merged into the outer one's key; a model forward or an engine scope
        inside an engine's or tracekit's step is part of that step, and unmarked too."""
        sources = [k.source if k is not None else "" for k in self.key_of]
        nestable = np.fromiter((s in NESTED_SOURCES for s in sources), bool, len(sources))[trace.spans.name]
        inner = np.flatnonzero(nestable & marked)
        if not len(inner):
            return {}
        above = nearest_marked(trace.parent, marked)  # the annotation at or above each span
        parent = trace.parent[inner]
        outer = np.where(parent >= 0, above[np.maximum(parent, 0)], -1)
        names = trace.spans.name
        merged: dict[int, PhaseKey] = {}
        # Innermost first (latest start), so a chain folds into the outermost.
        has = outer >= 0
        order = np.argsort(-trace.spans.ts[inner[has]], kind="stable")
        for h, o in zip(inner[has][order].tolist(), outer[has][order].tolist()):
            popped = merged.pop(h, None)
            mine = popped or self.key_of[int(names[h])]
            theirs = merged.get(o) or self.key_of[int(names[o])]
            assert mine is not None and theirs is not None
            if mine.source in MERGING_SOURCES and theirs.source in MERGING_SOURCES:
                merged[o] = merge_context(theirs, mine)
            elif not (mine.source in ("engine", "forward") and theirs.source in ENCLOSING_SOURCES):
                if popped is not None:
                    merged[h] = popped
                continue
            marked[h] = False
        return merged

    def _device_spans(self, trace: Trace) -> list[tuple[float, float, PhaseKey]]:
        """The device-side span of each phase annotation: its GPU-side annotation (paired with the
        host annotation of the same name in time order) where that covers the work launched from
        within the host one, else that work's extent."""
        gpu: dict[str, list[tuple[float, float]]] = {}
        for a in sorted(trace.gpu_annotations, key=lambda a: a.ts):
            if parse_phase(a.name) is not None:
                gpu.setdefault(a.name, []).append((a.ts, a.ts + a.dur))
        extents = launched_extents(trace, self.node)
        host: dict[str, list[int]] = {}
        spans = trace.spans
        for h in self._marks[np.argsort(spans.ts[self._marks], kind="stable")].tolist():
            host.setdefault(trace.strings[int(spans.name[h])], []).append(h)
        out: list[tuple[float, float, PhaseKey]] = []
        unpaired = len(self._ordinal)  # numbers for GPU-side step annotations with no host twin
        for name in sorted(gpu.keys() | host.keys()):
            key = parse_phase(name)
            assert key is not None
            g, h = gpu.get(name, []), host.get(name, [])
            for i in range(max(len(g), len(h))):
                dev = g[i] if i < len(g) else None
                ext = extents.get(h[i]) if i < len(h) else None
                if i < len(h):
                    this = self.key_at(h[i])
                else:
                    this, unpaired = numbered(key, unpaired), unpaired + 1
                if dev is not None and (ext is None or covers(dev[0], dev[1], ext)):
                    out.append((dev[0], dev[1], this))
                elif ext is not None:
                    out.append((ext[0], ext[1], this))
        return out

    def at_times(self, ts: NDArray[np.float64]) -> NDArray[np.int64]:
        """For each device time, the index (into ``gpu_keys``) of the device-side phase span
        containing it (the latest-starting one when they nest), or -1."""
        out = np.full(len(ts), -1, np.int64)
        if not self.gpu_keys or not len(ts):
            return out
        last = np.searchsorted(self.gpu_starts, ts, side="right") - 1
        inside = last >= 0
        inside[inside] = self._reach[last[inside]] > ts[inside]
        hit = np.flatnonzero(inside)
        direct = self.gpu_ends[last[hit]] > ts[hit]  # the latest-starting span holds t: most items
        out[hit[direct]] = last[hit[direct]]
        starts, ends = self.gpu_starts, self.gpu_ends
        for i in hit[~direct].tolist():
            t = float(ts[i])
            j = int(last[i])
            while not (starts[j] <= t < ends[j]):  # ends once j reaches the span that holds t
                j -= 1
            out[i] = j
        return out
