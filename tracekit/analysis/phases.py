"""Phases and steps: which prefill chunk, decode step or profiler step a piece of device work belongs to.

The names are the annotation vocabulary's (``tracekit.annotations.parse_phase``). Work linked to a
launch takes the phase annotation nearest above its launch on the host; work with no launch in
the trace (CUDA graph replays, a previous step's tail) takes the GPU-side phase annotation it ran
inside, if any.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tracekit.annotations import PhaseKey, parse_phase
from tracekit.trace.model import Trace
from tracekit.trace.tree import nearest_marked


class PhaseIndex:
    """The phase annotations of one trace: for host spans (``node``) and for device times (``at_times``)."""

    def __init__(self, trace: Trace) -> None:
        n = len(trace.spans)
        # The phase each string denotes (most denote none).
        self.key_of: list[PhaseKey | None] = [parse_phase(s) for s in trace.strings]
        marked = np.fromiter((k is not None for k in self.key_of), bool, len(self.key_of))[trace.spans.name]
        node = np.full(n + 1, -1, np.int64)
        node[:n] = nearest_marked(trace.parent, marked)
        self.node = node  # the phase annotation at or above each host span; index n (no span) reads -1
        gpu = [(a.ts, a.ts + a.dur, parse_phase(a.name)) for a in trace.gpu_annotations]
        gpu = sorted([(s, e, k) for s, e, k in gpu if k is not None], key=lambda t: t[0])
        self.gpu_starts = np.array([s for s, _, _ in gpu], np.float64)
        self.gpu_ends = np.array([e for _, e, _ in gpu], np.float64)
        self.gpu_keys = [k for _, _, k in gpu]
        # The latest end among the annotations that start at or before each one: a time past it
        # lies in none of them, so the walk in ``at_times`` stops at once.
        self._reach = np.maximum.accumulate(self.gpu_ends) if len(gpu) else self.gpu_ends

    def at_times(self, ts: NDArray[np.float64]) -> list[PhaseKey | None]:
        """For each device time, the GPU-side phase annotation containing it (the latest-starting
        one when they nest), or None."""
        out: list[PhaseKey | None] = [None] * len(ts)
        if not self.gpu_keys or not len(ts):
            return out
        last = np.searchsorted(self.gpu_starts, ts, side="right") - 1
        inside = last >= 0
        inside[inside] = self._reach[last[inside]] > ts[inside]
        starts, ends = self.gpu_starts, self.gpu_ends
        for i in np.flatnonzero(inside).tolist():
            t = float(ts[i])
            j = int(last[i])
            while not (starts[j] <= t < ends[j]):  # ends once j reaches the annotation that holds t
                j -= 1
            out[i] = self.gpu_keys[j]
        return out
