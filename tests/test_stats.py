"""The intervals: two-stage bootstrap over rounds then steps, reproducible from a fixed seed."""

from __future__ import annotations

import numpy as np
import pytest

from tracekit import stats
from tracekit.capture.cpuload import free_threads, is_high, is_too_busy
from tracekit.report.fit import fit_line, fit_replicates, with_intervals


def test_replicates_are_reproducible_and_bracket_the_median() -> None:
    rng = np.random.default_rng(0)
    groups = [list(rng.normal(10, 1, 29)) for _ in range(5)]
    a = stats.replicates(groups, seed=42)
    b = stats.replicates(groups, seed=42)
    assert a is not None and b is not None and np.array_equal(a, b)
    assert not np.array_equal(a, stats.replicates(groups, seed=43))
    lo, hi = stats.interval(a) or (0.0, 0.0)
    assert lo < (stats.point(groups) or 0.0) < hi
    assert stats.median_ci([[5.0]], seed=1) == (5.0, (5.0, 5.0))
    assert stats.replicates([], seed=1) is None and stats.interval(None) is None


def test_rounds_that_disagree_widen_the_interval() -> None:
    """The same 100 values: in five rounds whose levels differ, the interval must be wider than
    if they were one round of independent steps (steps within a round are correlated)."""
    rng = np.random.default_rng(1)
    offsets = [0.0, 0.0, 0.5, 1.5, 3.0]
    rounds = [list(10 + off + rng.normal(0, 0.3, 20)) for off in offsets]
    pooled = [[x for r in rounds for x in r]]
    lo_r, hi_r = stats.interval(stats.replicates(rounds, seed=7)) or (0.0, 0.0)
    lo_p, hi_p = stats.interval(stats.replicates(pooled, seed=7)) or (0.0, 0.0)
    assert hi_r - lo_r > 3 * (hi_p - lo_p)


def test_uneven_rounds_draw_only_real_steps() -> None:
    """Rounds of 1, 3 and 2 steps, each constant: a replicate that draws rounds (i, j, k) is the
    mean of those rounds' values weighted by their lengths, exactly. Padding counted as a step, or
    a drawn round contributing the wrong number of steps, gives a value outside that set."""
    import itertools

    groups = [[1.0], [2.0, 2.0, 2.0], [3.0, 3.0]]
    reps = stats.replicates(groups, "mean", seed=3)
    assert reps is not None and np.isfinite(reps).all()
    possible = set()
    for drawn in itertools.product(range(3), repeat=3):
        steps = [v for i in drawn for v in groups[i]]
        possible.add(round(sum(steps) / len(steps), 9))
    assert {round(float(x), 9) for x in reps} <= possible
    # And the draws vary: many of those values occur.
    assert len({round(float(x), 9) for x in reps}) > 5


def test_fit_intervals_from_replicates() -> None:
    xs = [1000.0, 2000.0, 4000.0]
    reps = np.array([[10 + 0.001 * x * k for x in xs] for k in (0.5, 1.0, 1.5)])
    a, b = fit_replicates(xs, reps)
    assert b == pytest.approx([0.0005, 0.001, 0.0015]) and a == pytest.approx([10.0] * 3)
    f = fit_line(xs, list(reps[1]))
    assert f is not None
    g = with_intervals(f, xs, reps)
    assert g.slope_ci95 is not None and g.slope_ci95[0] < f.slope < g.slope_ci95[1]


@pytest.mark.parametrize(
    ("others", "cpus", "threads", "high", "too_busy"),
    [
        (0.05, 2, 2, False, False),
        (0.4, 2, 1, False, False),  # a core partly taken: one thread, so no parallel region waits on it
        (1.0, 2, 1, True, False),
        (1.6, 2, 1, True, True),
        (2.5, 16, 13, False, False),
        (15.5, 16, 1, True, True),
    ],
)
def test_threads_follow_the_free_cores(others: float, cpus: int, threads: int, high: bool, too_busy: bool) -> None:
    assert free_threads(others, cpus) == threads
    assert is_high(others, cpus) is high and is_too_busy(others, cpus) is too_busy
    assert free_threads(None, cpus) is None


def test_per_second_turns_a_millisecond_interval_around() -> None:
    from tracekit.stats import per_second

    assert per_second((20.0, 40.0)) == (25.0, 50.0)
    assert per_second(None) is None
    assert per_second((0.0, 5.0)) is None  # no upper bound on the rate
