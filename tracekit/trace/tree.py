"""Vectorized tree work on host spans: nesting them per thread, and finding marked ancestors.

Host spans on one thread nest like a call stack. The classic way to find each span's parent is a
stack walked in Python, one span at a time; on traces with millions of spans that loop is what a
loader spends its time on. Here the same answer comes from array operations:

* sorted by (thread, start, longest first), the parent of span ``i`` is the nearest earlier span
  ``j`` on the same thread whose end (plus a rounding tolerance) reaches the end of ``i``. That is a
  "nearest previous greater element" query, answered for all spans at once by pointer jumping
  over candidate parents;
* "the nearest ancestor (or self) with property P" (the launching operator, the innermost scope,
  the phase annotation) is pointer jumping: each span points at itself if marked, else at its
  parent, and the pointers are squared until they stop moving (log2 of the depth rounds).

Both give exactly what a stack walk gives (``tests/test_tree.py`` checks them against one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

# Kineto prints nanosecond clocks in microseconds with three decimals: a child may appear to end
# up to a rounding step after its parent.
END_TOLERANCE_US = 1e-3


def nesting_order(
    thread: NDArray[np.integer[Any]], ts: NDArray[np.float64], dur: NDArray[np.float64]
) -> NDArray[np.int64]:
    """The order ``nest_sorted`` needs: by thread, start, and longest first among equal starts (stable)."""
    return np.lexsort((-dur, ts, thread)).astype(np.int64, copy=False)


def nest_sorted(
    thread: NDArray[np.integer[Any]], ts: NDArray[np.float64], dur: NDArray[np.float64]
) -> NDArray[np.int64]:
    """The parent of each span already in ``nesting_order``: the index of the innermost span that
    encloses it on its thread, or -1. Works on the caller's arrays, so nesting a large trace needs
    no sorted copy of its columns."""
    n = len(ts)
    if n == 0:
        return np.empty(0, np.int64)
    end = ts + dur
    # First index of each span's thread run.
    new_run = np.empty(n, bool)
    new_run[0] = True
    np.not_equal(thread[1:], thread[:-1], out=new_run[1:])
    # The latest end among the earlier spans of its thread: a span that ends after all of them has
    # no parent, and a jump that leaves only such spans behind ends the search at once.
    before = np.empty(n, np.float64)
    runs = np.append(np.flatnonzero(new_run), n)
    for a, b in zip(runs[:-1].tolist(), runs[1:].tolist()):
        before[a] = -np.inf
        if b - a > 1:
            np.maximum.accumulate(end[a : b - 1], out=before[a + 1 : b])
    del runs
    # Each span's candidate parent starts as the span before it on its thread. A candidate that
    # ends too early (before the span's end, beyond a rounding step) cannot be the parent, and
    # neither can anything between its own candidate and it (those end before it does), so the
    # span jumps to the candidate's candidate. Candidates jump together, so chains halve each
    # round: a few rounds over a shrinking set. Indices are 32-bit here (half the memory).
    cand = np.arange(-1, n - 1, dtype=np.int32)
    cand[new_run] = -1
    del new_run
    cand[before + END_TOLERANCE_US < end] = -1
    active = np.flatnonzero(cand >= 0).astype(np.int32)
    while active.size:
        c = cand[active]
        short = end[c] + END_TOLERANCE_US < end[active]
        active = active[short]
        c = c[short]
        nxt = cand[c]
        nxt[before[c] + END_TOLERANCE_US < end[active]] = -1  # nothing before c reaches that far
        cand[active] = nxt
        active = active[nxt >= 0]
    del end, before
    return cand.astype(np.int64)


def child_time(parent: NDArray[np.int64], dur: NDArray[np.float64]) -> NDArray[np.float64]:
    """The time each span's direct children cover (its self time is ``dur - child``)."""
    has = parent >= 0
    return np.bincount(parent[has], weights=dur[has], minlength=len(parent)).astype(np.float64)


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
