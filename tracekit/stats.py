"""Intervals for repeated measurements (numpy only, the ground floor: capture and report share it).

A capture measures each context in rounds; within a round the decode steps run back to back, so
they share the machine's state (clock, caches, whoever else runs) and are correlated. Treating
them as independent samples would give intervals far too narrow. The interval of a figure is
therefore a two-stage (hierarchical) bootstrap: draw the rounds with replacement, then the steps
within each drawn round with replacement, pool them and take the statistic; the 2.5th and 97.5th
percentiles of the replicates are the 95 % interval. Between-round spread (a load burst, a
frequency change) widens it; many steps in a round cannot narrow it below what the rounds allow.

The random draws come from a fixed seed per figure (``seed_for``), so a report rebuilt from the
same run folder gives the same intervals, and the capture's manifest and the report agree.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

REPLICATES = 2000
LEVEL = 0.95
Stat = Literal["median", "mean"]
Interval = tuple[float, float]


def seed_for(*parts: object) -> int:
    """A stable seed from the figure's name and context (``hash()`` varies between processes)."""
    return zlib.crc32(repr(parts).encode("utf-8"))


# Every figure's seed, here only: the capture's manifest and the report draw the same replicates.
def decode_seed(context_tokens: int) -> int:
    return seed_for("decode", context_tokens)


def prefill_seed(context_tokens: int, what: str = "prefill") -> int:
    """The prefill's seed (``what="ttft"``: the time to first token's)."""
    return seed_for(what, context_tokens)


def share_seed(context_tokens: int) -> int:
    """The attention share's seed."""
    return seed_for("attention_share", context_tokens)


def _groups(groups: Sequence[Sequence[float]]) -> list[NDArray[np.float64]]:
    return [np.asarray(g, np.float64) for g in groups if len(g)]


def point(groups: Sequence[Sequence[float]], stat: Stat = "median") -> float | None:
    """The statistic of every value pooled (None when there is none)."""
    gs = _groups(groups)
    if not gs:
        return None
    pooled = np.concatenate(gs)
    return float(np.median(pooled) if stat == "median" else np.mean(pooled))


def replicates(
    groups: Sequence[Sequence[float]], stat: Stat = "median", *, seed: int, n: int = REPLICATES
) -> NDArray[np.float64] | None:
    """``n`` two-stage bootstrap replicates of the pooled statistic (None when there are no values).

    Each replicate draws as many rounds as there are, with replacement, then within each drawn
    round as many steps as it holds, with replacement."""
    gs = _groups(groups)
    if not gs:
        return None
    rng = np.random.default_rng(seed)
    r = len(gs)
    lens = np.array([len(g) for g in gs], np.int64)
    width = int(lens.max())
    table = np.full((r, width), np.nan)
    for i, g in enumerate(gs):
        table[i, : len(g)] = g
    out = np.empty(n, np.float64)
    # Replicates in batches of about a million drawn steps: memory stays flat however many
    # tokens a round decodes.
    batch = max(1, min(n, (1 << 20) // (r * width)))
    for lo in range(0, n, batch):
        m = min(batch, n - lo)
        rounds = rng.integers(0, r, size=(m, r))  # which round fills each slot
        drawn_len = lens[rounds]  # (m, r)
        steps = (rng.random((m, r, width)) * drawn_len[..., None]).astype(np.int64)
        values = table[rounds[..., None], steps]  # (m, r, width)
        # A drawn round contributes as many steps as it holds; the rest of its row is padding.
        values[np.arange(width)[None, None, :] >= drawn_len[..., None]] = np.nan
        flat = values.reshape(m, r * width)
        out[lo : lo + m] = np.nanmedian(flat, axis=1) if stat == "median" else np.nanmean(flat, axis=1)
    return out


def interval(reps: NDArray[np.float64] | None, level: float = LEVEL) -> Interval | None:
    """The percentile interval of bootstrap replicates (NaN replicates, e.g. undefined ratios, dropped)."""
    if reps is None:
        return None
    ok = reps[np.isfinite(reps)]
    if not len(ok):
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(ok, [tail, 100 - tail])
    return float(lo), float(hi)


def median_ci(groups: Sequence[Sequence[float]], *, seed: int) -> tuple[float | None, Interval | None]:
    """The pooled median and its 95 % two-stage bootstrap interval."""
    return point(groups, "median"), interval(replicates(groups, "median", seed=seed))


def per_second(ms: Interval | None) -> Interval | None:
    """An interval of milliseconds per item as items per second (the bounds trade places)."""
    return None if ms is None or ms[0] <= 0 else (1000.0 / ms[1], 1000.0 / ms[0])


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float] | None:
    """Percentiles (linear interpolation) of plain values, e.g. inter-token latency p50/p90/p99."""
    if not len(values):
        return None
    return [float(x) for x in np.percentile(np.asarray(values, np.float64), list(qs))]


def overlap(a: Interval | None, b: Interval | None) -> bool:
    """Whether two intervals share any value (False when either is unknown)."""
    if a is None or b is None:
        return False
    return a[0] <= b[1] and b[0] <= a[1]


def rounded(iv: Interval | None, digits: int = 6) -> list[float] | None:
    """An interval as a JSON-ready ``[lo, hi]`` list."""
    return None if iv is None else [round(iv[0], digits), round(iv[1], digits)]


def line_replicates(
    xs: Sequence[float] | NDArray[np.float64], reps: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Intercepts and slopes of the least-squares line through each row ``reps[b]`` (one value
    per x): the fit of every figure against context, and of each of its bootstrap replicates."""
    x = np.asarray(xs, np.float64)
    dx = x - x.mean()
    sxx = float((dx**2).sum())
    means = reps.mean(axis=1)
    slopes = ((reps - means[:, None]) * dx[None, :]).sum(axis=1) / sxx
    return means - slopes * x.mean(), slopes


def line(
    xs: Sequence[float] | NDArray[np.float64], ys: Sequence[float] | NDArray[np.float64]
) -> tuple[float, float, float] | None:
    """The least-squares line y = intercept + slope·x and its R², as ``(intercept, slope, r2)``;
    None without two distinct x. R² is 1.0 when y is constant and fitted exactly."""
    x, y = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if len(x) < 2 or len(x) != len(y) or np.unique(x).size < 2:
        return None
    intercepts, slopes = line_replicates(x, y[None, :])
    a, b = float(intercepts[0]), float(slopes[0])
    ss_tot = float(((y - y.mean()) ** 2).sum())
    ss_res = float(((y - (a + b * x)) ** 2).sum())
    return a, b, 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res < 1e-12 else 0.0)
