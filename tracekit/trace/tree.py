"""Vectorized tree work on host spans: nesting them per thread, and finding marked ancestors.

Host spans on one thread nest like a call stack. The classic way to find each span's parent is a
stack walked in Python, one span at a time; on traces with millions of spans that loop is what a
loader spends its time on. Here the same answer comes from array operations:

* sorted by (thread, start, longest first), the parent of span ``i`` is the nearest earlier span
  ``j`` on the same thread whose end (plus a rounding tolerance) reaches the end of ``i``. That is a
  "nearest previous greater element" query, answered for all spans at once by binary lifting over
  a table of range maxima, in blocks so that the table stays small;
* "the nearest ancestor (or self) with property P" (the launching operator, the innermost scope,
  the phase annotation) is pointer jumping: each span points at itself if marked, else at its
  parent, and the pointers are squared until they stop moving (log2 of the depth rounds).

Both give exactly what the stack walk gives (see ``tests/test_trace_load.py``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Kineto prints nanosecond clocks in microseconds with three decimals: a child may appear to end
# up to a rounding step after its parent.
END_TOLERANCE_US = 1e-3
_BLOCK = 1 << 15


def nest(
    thread: NDArray[np.int64], ts: NDArray[np.float64], dur: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Order host spans and nest them.

    Returns ``(order, parent, child)``: ``order`` sorts the spans by thread (first seen first),
    start, and longest first among equal starts (stable); ``parent[i]`` is the index (in sorted
    order) of the innermost span enclosing sorted span ``i`` or -1; ``child[i]`` the total duration
    of its direct children.
    """
    n = len(ts)
    if n == 0:
        empty = np.empty(0, np.int64)
        return empty, empty.copy(), np.empty(0, np.float64)
    order = np.lexsort((-dur, ts, thread))
    ts = ts[order]
    dur = dur[order]
    thread = thread[order]
    end = ts + dur
    reach = end + END_TOLERANCE_US
    # First index of each span's thread run.
    new_run = np.empty(n, bool)
    new_run[0] = True
    np.not_equal(thread[1:], thread[:-1], out=new_run[1:])
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(n), 0))
    parent = np.full(n, -1, np.int64)
    for b in range(0, n, _BLOCK):
        _nest_block(b, min(n, b + _BLOCK), end, reach, run_start, parent)
    has = parent >= 0
    child = np.bincount(parent[has], weights=dur[has], minlength=n).astype(np.float64)
    return order.astype(np.int64), parent, child


def _nest_block(
    b: int,
    e: int,
    end: NDArray[np.float64],
    reach: NDArray[np.float64],
    run_start: NDArray[np.int64],
    parent: NDArray[np.int64],
) -> None:
    """Parents of spans ``b..e-1``, given the parents of every span before ``b``."""
    r = reach[b:e]
    m = e - b
    # levels[k][p] = max(r[p : p + 2**k]) within the block.
    levels = [r]
    k = 1
    while (1 << k) <= m:
        prev = levels[-1]
        half = 1 << (k - 1)
        levels.append(np.maximum(prev[:-half], prev[half:]))
        k += 1
    target = end[b:e]
    lo = np.maximum(run_start[b:e] - b, 0)  # the search stays on the span's thread and in the block
    pos = np.arange(m)  # exclusive bound: spans pos..i-1 all end before span i
    for k in range(len(levels) - 1, -1, -1):
        step = 1 << k
        cand = pos - step
        ok = cand >= lo
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            continue
        jump = levels[k][cand[idx]] < target[idx]
        pos[idx[jump]] = cand[idx[jump]]
    j = pos - 1
    found = j >= lo
    parent[b:e][found] = j[found] + b
    # Not found inside the block: the answer is on the open stack at the block's start, which is
    # span b-1 and its chain of ancestors (all already known). Walk those chains together.
    rest = np.flatnonzero(~found & (run_start[b:e] < b))
    if rest.size == 0:
        return
    want = target[rest]
    cand = np.full(rest.size, b - 1, np.int64)
    active = np.arange(rest.size)
    while active.size:
        c = cand[active]
        alive = c >= 0
        up = np.zeros(active.size, bool)
        up[alive] = reach[c[alive]] < want[active[alive]]
        cand[active[up]] = parent[c[up]]
        active = active[up]
    ok = cand >= 0
    # The chain of b-1 may leave the span's thread only through -1 (chains never cross threads).
    parent[b + rest[ok]] = cand[ok]


def nearest_marked(parent: NDArray[np.int64], marked: NDArray[np.bool_]) -> NDArray[np.int64]:
    """For each node, the nearest marked node among itself and its ancestors, or -1."""
    n = len(parent)
    # Index n is a sentinel standing for -1, pointing at itself.
    ptr = np.empty(n + 1, np.int64)
    ptr[:n] = np.where(marked, np.arange(n), np.where(parent >= 0, parent, n))
    ptr[n] = n
    done = np.empty(n + 1, bool)
    done[:n] = marked
    done[n] = True
    while True:
        pending = np.flatnonzero(~done[ptr[:n]])
        if pending.size == 0:
            break
        ptr[pending] = ptr[ptr[pending]]
    out = ptr[:n]
    out[out == n] = -1
    return out
