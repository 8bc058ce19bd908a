"""Interval arithmetic for busy/idle time."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray


def union_length(intervals: Iterable[tuple[float, float]], lo: float | None = None, hi: float | None = None) -> float:
    """Total length of the union of ``[start, end)`` intervals, clipped to ``[lo, hi]`` if given."""
    spans = []
    for s, e in intervals:
        if lo is not None:
            s = max(s, lo)
        if hi is not None:
            e = min(e, hi)
        if e > s:
            spans.append((s, e))
    spans.sort()
    total = 0.0
    cur_s = cur_e = None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        elif e > cur_e:
            cur_e = e
    if cur_e is not None and cur_s is not None:
        total += cur_e - cur_s
    return total


def union_length_arrays(start: NDArray[np.float64], end: NDArray[np.float64], lo: float, hi: float) -> float:
    """``union_length`` over intervals given as arrays, clipped to ``[lo, hi]``."""
    s = np.maximum(start, lo)
    e = np.minimum(end, hi)
    keep = e > s
    s, e = s[keep], e[keep]
    if s.size == 0:
        return 0.0
    order = np.argsort(s, kind="stable")
    s, e = s[order], e[order]
    reach = np.maximum.accumulate(e)
    # A new piece of the union starts where an interval starts after everything before it ended.
    new = np.empty(s.size, bool)
    new[0] = True
    np.greater(s[1:], reach[:-1], out=new[1:])
    firsts = np.flatnonzero(new)
    lasts = np.append(firsts[1:] - 1, s.size - 1)
    return float(np.sum(reach[lasts] - s[firsts]))
