"""Interval arithmetic for busy/idle time."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def union_length_arrays(start: NDArray[np.float64], end: NDArray[np.float64], lo: float, hi: float) -> float:
    """Total length of the union of the ``[start, end)`` intervals, clipped to ``[lo, hi]``."""
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
