"""Bootstrap replicates of each context's figures, and every interval drawn from them.

A context's decode time per token is the median of its kept decode steps; its attention share is
the mean over its profiled steps of attention time / step span. Both are redrawn
``stats.REPLICATES`` times by the two-stage bootstrap of ``tracekit.stats`` (rounds, then steps
within each drawn round), with a fixed seed per figure and context, so the same run folder always
gives the same intervals and the capture's manifest agrees with the report. Each context's
replicates are drawn once (``draw_decode``, then ``draw_share``) and kept on it; the functions
that hand them out only read. Attention ms per token is the product of the two replicates (drawn
independently: the timed and the profiled steps are different steps). Fits and differences
between contexts are computed replicate by replicate, so their intervals carry the spread of
every point they use.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from tracekit import stats
from tracekit.report.model import ContextFigures
from tracekit.stats import Interval

Reps = NDArray[np.float64]


def decode_reps(c: ContextFigures) -> Reps | None:
    """Replicates of the median decode ms per token (drawn by ``draw_decode``)."""
    return c.decode_reps


def share_reps(c: ContextFigures) -> Reps | None:
    """Replicates of the mean attention share of the profiled steps (drawn by ``draw_share``)."""
    return c.share_reps


def attention_reps(c: ContextFigures) -> Reps | None:
    d, s = decode_reps(c), share_reps(c)
    return None if d is None or s is None else d * s


def _drawn(samples: list[list[float]], stat: stats.Stat, seed: int) -> tuple[Reps | None, float | None, Interval | None]:
    """The replicates of ``stat`` over ``samples`` (a list per round), its value and its interval."""
    reps = stats.replicates(samples, stat, seed=seed)
    return reps, stats.point(samples, stat), stats.interval(reps)


def draw_decode(c: ContextFigures) -> None:
    """Set a context's decode replicates, median, interval and tokens/s from its decode samples."""
    if not c.decode_samples_ms:
        return
    seed = stats.decode_seed(c.context_tokens)
    c.decode_reps, c.decode_ms_per_token, c.decode_ms_per_token_ci95 = _drawn(c.decode_samples_ms, "median", seed)
    c.decode_ms_by_round = [float(np.median(r)) for r in c.decode_samples_ms if r]
    c.rounds = c.rounds or len(c.decode_samples_ms)
    if c.decode_ms_per_token:
        c.tokens_per_s = 1000.0 / c.decode_ms_per_token
    c.tokens_per_s_ci95 = stats.per_second(c.decode_ms_per_token_ci95)


def draw_share(c: ContextFigures) -> None:
    """Set a context's attention-share replicates, mean and interval from its profiled steps, and
    attention ms per token (share times the decode median: ``draw_decode`` goes first)."""
    if not c.attention_share_samples:
        return
    seed = stats.share_seed(c.context_tokens)
    c.share_reps, c.attention_share, c.attention_share_ci95 = _drawn(c.attention_share_samples, "mean", seed)
    if c.decode_ms_per_token is not None and c.attention_share is not None:
        c.attention_ms_per_token = c.attention_share * c.decode_ms_per_token
        c.attention_ms_per_token_ci95 = stats.interval(attention_reps(c))


def stacked(cs: list[ContextFigures], get: Callable[[ContextFigures], Reps | None]) -> Reps | None:
    """Replicates of several contexts side by side, shape (replicates, contexts); None if any lacks them."""
    cols = [get(c) for c in cs]
    if not cols or any(x is None for x in cols):
        return None
    return np.stack([x for x in cols if x is not None], axis=1)


def difference(a: ContextFigures, b: ContextFigures, which: str = "decode") -> tuple[Reps | None, Interval | None]:
    """Replicates and interval of ``b - a`` for ``decode`` or ``attention`` ms per token."""
    fn = decode_reps if which == "decode" else attention_reps
    ra, rb = fn(a), fn(b)
    if ra is None or rb is None:
        return None, None
    d = rb - ra
    return d, stats.interval(d)


def category_reps(c: ContextFigures, category: str) -> Reps | None:
    """Replicates of a category's ms per decoded token: the decode median's replicates times those
    of the category's mean share (attention's are ``attention_reps``, so the two figures agree)."""
    if category == "attention":
        return attention_reps(c)
    d, samples = decode_reps(c), c.category_share_samples.get(category)
    if d is None or not samples:
        return None
    share = stats.replicates(samples, "mean", seed=stats.seed_for("category_share", category, c.context_tokens))
    return None if share is None else d * share


def category_change(a: ContextFigures, b: ContextFigures, category: str) -> tuple[float, Interval | None]:
    """How much a category's ms per decoded token changed from ``a`` to ``b``, with its interval."""
    change = b.categories_ms_per_token.get(category, 0.0) - a.categories_ms_per_token.get(category, 0.0)
    ra, rb = category_reps(a, category), category_reps(b, category)
    if ra is None and rb is None:
        return change, None
    zeros = np.zeros(stats.REPLICATES)
    return change, stats.interval((zeros if rb is None else rb) - (zeros if ra is None else ra))
