"""Timing integrity: where host timers around a span would under-measure the device work.

For every host annotation span, compare where it ends on the host with where the device work
launched inside it ends. An asynchronous device keeps working after the host returns; a host
timer read at the end of the span (without synchronizing) stops too early by that gap.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracekit.trace.model import Trace

ANNOTATION_CATS = frozenset({"user_annotation"})


@dataclass(frozen=True)
class HostDeviceGap:
    name: str
    host_start_us: float
    host_dur_us: float
    device_end_us: float
    launched: int

    @property
    def gap_us(self) -> float:
        """How long the device worked past the end of the host span."""
        return max(0.0, self.device_end_us - (self.host_start_us + self.host_dur_us))

    @property
    def true_dur_us(self) -> float:
        return max(self.host_dur_us, self.device_end_us - self.host_start_us)


def timer_underreads(trace: Trace, *, min_gap_fraction: float = 0.01, min_gap_us: float = 100.0) -> list[HostDeviceGap]:
    """Annotation spans whose launched device work ends well after the span ends on the host."""
    spans = trace.spans
    if not len(trace.kernels):
        return []
    parent = trace.parent.tolist()
    is_annotation = trace.host_mask(ANNOTATION_CATS).tolist()
    ends: dict[int, float] = {}
    counts: dict[int, int] = {}
    ancestors: dict[int, tuple[int, ...]] = {}

    def annotated_ancestors(node: int) -> tuple[int, ...]:
        got = ancestors.get(node)
        if got is not None:
            return got
        chain = []
        n = node
        while n >= 0 and n not in ancestors:
            chain.append(n)
            n = parent[n]
        acc = ancestors[n] if n >= 0 else ()
        for m in reversed(chain):
            if is_annotation[m]:
                acc = (*acc, m)
            ancestors[m] = acc
        return ancestors[node]

    for end, node in zip(trace.kernels.end.tolist(), trace.link.tolist()):
        if node < 0:
            continue
        for a in annotated_ancestors(node):
            if end > ends.get(a, float("-inf")):
                ends[a] = end
            counts[a] = counts.get(a, 0) + 1
    out = []
    for a, end in ends.items():
        ts, dur = float(spans.ts[a]), float(spans.dur[a])
        g = HostDeviceGap(trace.strings[int(spans.name[a])], ts, dur, end, counts[a])
        if g.gap_us >= min_gap_us and g.gap_us >= min_gap_fraction * dur:
            out.append(g)
    out.sort(key=lambda g: -g.gap_us)
    return out
