"""The vectorized tree work equals the plain stack walk and ancestor walk it replaces."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from tracekit.analysis.busy import union_length_arrays
from tracekit.trace.tree import END_TOLERANCE_US, child_time, nearest_marked, nest_sorted, nesting_order


def nest(
    thread: NDArray[np.integer[Any]], ts: NDArray[np.float64], dur: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """The library's nesting as one call, as the build runs it: ``(order, parent, child)``, where
    ``order`` sorts the spans by thread, start, and longest first among equal starts (stable);
    ``parent[i]`` is the index (in sorted order) of the innermost span enclosing sorted span ``i``
    or -1; ``child[i]`` the total duration of its direct children."""
    order = nesting_order(thread, ts, dur)
    sorted_dur = dur[order]
    parent = nest_sorted(thread[order], ts[order], sorted_dur)
    return order, parent, child_time(parent, sorted_dur)


def union_length(intervals: Iterable[tuple[float, float]], lo: float | None = None, hi: float | None = None) -> float:
    """The reference: sort, then merge overlapping intervals one by one, clipped to ``[lo, hi]``."""
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


def _stack_nest(thread: list[int], ts: list[float], dur: list[float]) -> tuple[list[int], list[int], list[float]]:
    """The reference: sort, then one open-span stack per thread, walked span by span."""
    order = sorted(range(len(ts)), key=lambda i: (thread[i], ts[i], -dur[i]))
    parent = [-1] * len(ts)
    child = [0.0] * len(ts)
    ends: list[float] = []
    idx: list[int] = []
    prev = None
    for pos, i in enumerate(order):
        if thread[i] != prev:
            ends, idx, prev = [], [], thread[i]
        end = ts[i] + dur[i]
        while ends and end > ends[-1]:
            ends.pop()
            idx.pop()
        if idx:
            parent[pos] = idx[-1]
            child[idx[-1]] += dur[i]
        ends.append(end + END_TOLERANCE_US)
        idx.append(pos)
    return order, parent, child


spans = st.lists(
    st.tuples(
        st.integers(0, 2),  # thread
        st.integers(0, 60).map(float),  # start: small integers make equal starts and ends common
        st.sampled_from([0.0, 0.0005, 1.0, 2.0, 3.0, 5.0, 8.0, 20.0, 50.0]),
    ),
    max_size=120,
)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@settings(max_examples=600, deadline=None)
@given(spans)
def test_nest_equals_the_stack_walk(rows: list[tuple[int, float, float]]) -> None:
    thread = [r[0] for r in rows]
    ts = [r[1] for r in rows]
    dur = [r[2] for r in rows]
    order, parent, child = nest(np.array(thread, np.int64), np.array(ts), np.array(dur))
    want_order, want_parent, want_child = _stack_nest(thread, ts, dur)
    assert order.tolist() == want_order
    assert parent.tolist() == want_parent
    assert child.tolist() == pytest.approx(want_child)


def test_nest_of_a_deep_and_wide_tree() -> None:
    """Long sibling runs and deep chains (where jumping matters) on one thread, and a second thread."""
    rows: list[tuple[int, float, float]] = []
    for k in range(300):  # 300 siblings under one root, each with a chain of 20 nested children
        base = 1000.0 * k
        rows += [(1, base + d, 900.0 - 2 * d) for d in range(20)]
    rows.append((1, -1.0, 400_000.0))
    rows += [(2, float(i), 0.5) for i in range(500)]
    thread = [r[0] for r in rows]
    ts = [r[1] for r in rows]
    dur = [r[2] for r in rows]
    order, parent, child = nest(np.array(thread, np.int64), np.array(ts), np.array(dur))
    want_order, want_parent, want_child = _stack_nest(thread, ts, dur)
    assert order.tolist() == want_order and parent.tolist() == want_parent
    assert child.tolist() == pytest.approx(want_child)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 40), st.booleans()), max_size=60))
def test_nearest_marked_equals_walking_up(rows: list[tuple[int, bool]]) -> None:
    # A forest where every parent comes before its child.
    parent = [p if 0 <= p < i else -1 for i, (p, _) in enumerate(rows)]
    marked = [m for _, m in rows]
    got = nearest_marked(np.array(parent, np.int64), np.array(marked, bool)).tolist()
    for i in range(len(rows)):
        n = i
        while n >= 0 and not marked[n]:
            n = parent[n]
        assert got[i] == n


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 100).map(float), st.integers(0, 30).map(float)), max_size=50),
    st.integers(0, 60).map(float),
    st.integers(40, 140).map(float),
)
def test_union_of_arrays_equals_the_loop(rows: list[tuple[float, float]], lo: float, hi: float) -> None:
    iv = [(s, s + d) for s, d in rows]
    s = np.array([a for a, _ in iv], np.float64)
    e = np.array([b for _, b in iv], np.float64)
    assert union_length_arrays(s, e, lo, hi) == pytest.approx(union_length(iv, lo, hi))


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.booleans()), max_size=12))
def test_column_store_equals_concatenating_the_parts(parts: list[tuple[int, bool]]) -> None:
    """Parts appended to the growing store read back as their concatenation, dtypes widened as
    concatenation widens them (32-bit origins, then 64-bit ones); the store is empty after."""
    from tracekit.trace.model import _COLUMNS, Columns, ColumnStore

    rng = np.random.default_rng(len(parts))
    cols = []
    for n, wide in parts:
        cols.append(
            Columns(
                name=rng.integers(0, 99, n).astype(np.int32),
                cat=rng.integers(0, 9, n).astype(np.int32),
                thread=rng.integers(0, 4, n).astype(np.int32),
                ts=rng.random(n),
                dur=rng.random(n),
                corr=rng.integers(-1, 1 << 40, n),
                origin=rng.integers(0, 1 << 33, n) if wide else rng.integers(0, 1 << 30, n).astype(np.int32),
            )
        )
    store = ColumnStore()
    for c in cols:
        store.append(c)
    assert len(store) == sum(n for n, _ in parts)
    got = store.drain()
    given = [c for c in cols if len(c)]
    for f in _COLUMNS:
        want = np.concatenate([getattr(c, f) for c in given]) if given else getattr(Columns(), f)
        assert np.array_equal(getattr(got, f), want), f
        assert getattr(got, f).dtype == want.dtype, f
    assert len(store) == 0 and len(store.drain()) == 0


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-1, 40), max_size=60),
    st.lists(st.integers(-1, 45), max_size=60),
    st.booleans(),
)
def test_link_by_id_equals_a_dict_built_in_order(launch: list[int], kernels: list[int], rising: bool) -> None:
    """Each device event links to the last launch with its correlation id, whether the ids rise
    in file order (the fast path) or repeat and wander (the sorted one)."""
    from tracekit.trace.links import link_by_id

    if rising:
        launch = sorted(set(launch))
    runtime = np.arange(len(launch), dtype=np.int64) * 3 + 1  # host positions of the launches
    last: dict[int, int] = {}
    for pos, cid in zip(runtime.tolist(), launch):
        if cid != -1:
            last[cid] = pos
    want = [last.get(k, -1) if k != -1 else -1 for k in kernels]
    got = link_by_id(runtime, np.array(launch, np.int64), np.array(kernels, np.int64))
    assert got.tolist() == want
