"""Growth across steps: attention µs per decode step against its KV tokens, the rest against query tokens.

Least squares over the steps of one trace or of many (a long generation, a sweep of benchmark
runs), with 95 % intervals from a bootstrap over steps: draw the steps with replacement, refit,
take the 2.5th and 97.5th percentiles of the replicates' slopes (and of the prediction at a KV
length the user names). Seeds are fixed per figure (``stats.seed_for``), so the same steps give the
same intervals. A fit needs at least ``MIN_STEPS`` steps over at least two distinct x values; a
slope whose interval holds zero is reported as such ("inconclusive"), never as growth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracekit import stats
from tracekit.analysis.steps import StepTable

MIN_STEPS = 3
# A prediction (``--at-kv``) stays within this factor of the measured KV range, as the run report's do.
EXTRAPOLATION = 2.0
REPLICATES = 2000


@dataclass(frozen=True)
class Fit:
    """y = intercept + slope·x over ``n`` steps, with the 95 % bootstrap interval of the slope."""

    slope: float
    intercept: float
    r2: float
    n: int
    x_min: float
    x_max: float
    slope_ci95: tuple[float, float] | None
    replicates: NDArray[np.float64] = field(repr=False, compare=False)  # (slope, intercept) rows

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x

    def at_ci95(self, x: float) -> tuple[float, float] | None:
        return stats.interval(self.replicates[:, 1] + self.replicates[:, 0] * x)

    @property
    def conclusive(self) -> bool:
        return self.slope_ci95 is not None and (self.slope_ci95[0] > 0 or self.slope_ci95[1] < 0)


def fit(x: NDArray[np.float64], y: NDArray[np.float64], *, seed: int) -> Fit | None:
    """The least-squares line through the points, or None when they cannot carry one."""
    n = len(x)
    if n < MIN_STEPS or len(np.unique(x)) < 2:
        return None
    fitted = stats.line(x, y)
    if fitted is None:
        return None
    intercept, slope, r2 = fitted
    rng = np.random.default_rng(seed)
    reps = np.empty((REPLICATES, 2), np.float64)
    batch = max(1, min(REPLICATES, (1 << 20) // n))  # a million drawn steps at a time: memory stays flat
    for lo in range(0, REPLICATES, batch):
        m = min(batch, REPLICATES - lo)
        idx = rng.integers(0, n, size=(m, n))
        xs, ys = x[idx], y[idx]
        bx, by = xs.mean(axis=1), ys.mean(axis=1)
        ddx = xs - bx[:, None]
        var = (ddx**2).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            b = np.where(var > 0, (ddx * (ys - by[:, None])).sum(axis=1) / var, np.nan)  # one x drawn: no slope
        reps[lo : lo + m, 0] = b
        reps[lo : lo + m, 1] = by - b * bx
    return Fit(slope, intercept, r2, n, float(x.min()), float(x.max()), stats.interval(reps[:, 0]), reps)


@dataclass
class Growth:
    """The fits over a step table, and what they could not use."""

    attention: Fit | None  # attention µs per decode step against KV tokens
    other: Fit | None  # the rest of a step's device time against its query tokens (all phases)
    decode_steps: int  # decode steps in the table
    decode_with_kv: int  # of those, with known KV tokens
    at_kv: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        a, o = self.attention, self.other
        out: dict[str, Any] = {
            "n_steps": a.n if a else 0,
            "decode_steps": self.decode_steps,
            "decode_steps_with_kv": self.decode_with_kv,
            "attention_us_per_1k_kv": None if a is None else round(a.slope * 1000, 6),
            "attention_us_per_1k_kv_ci95": _ci(a.slope_ci95, 1000) if a else None,
            "attention_intercept_us": None if a is None else round(a.intercept, 3),
            "r2": None if a is None else round(a.r2, 6),
            "kv_tokens_range": None if a is None else [int(a.x_min), int(a.x_max)],
            "conclusive": bool(a and a.conclusive),
            "other_us_per_query_token": None if o is None else round(o.slope, 6),
            "other_us_per_query_token_ci95": _ci(o.slope_ci95, 1) if o else None,
            "other_r2": None if o is None else round(o.r2, 6),
            "other_n_steps": o.n if o else 0,
            "at_kv": self.at_kv,
            "attention_us_at_kv": None,
            "attention_us_at_kv_ci95": None,
            "notes": list(self.notes),
        }
        if a is not None and self.at_kv is not None:
            out["attention_us_at_kv"] = round(a.at(self.at_kv), 3)
            out["attention_us_at_kv_ci95"] = _ci(a.at_ci95(self.at_kv), 1)
        return out


def _ci(iv: tuple[float, float] | None, scale: float) -> list[float] | None:
    return None if iv is None else [round(iv[0] * scale, 6) + 0.0, round(iv[1] * scale, 6) + 0.0]


def growth(steps: StepTable, at_kv: int | None = None) -> Growth:
    """Fit attention against KV tokens over the decode steps, the rest against query tokens."""
    decode = steps.phase == "decode"
    known = decode & np.isfinite(steps.kv_tokens)
    notes: list[str] = []
    att = fit(steps.kv_tokens[known], steps.attention_us[known], seed=stats.seed_for("steps", "attention"))
    if att is None:
        if not decode.any():
            notes.append("no decode steps: attention cannot be fitted against KV tokens")
        elif known.sum() < MIN_STEPS:
            notes.append(
                f"{int(known.sum())} decode steps with a known KV length (a fit needs {MIN_STEPS}): "
                "attention is not fitted against KV tokens"
            )
        else:
            notes.append("every decode step has the same KV length: attention cannot be fitted against it")
    elif not att.conclusive:
        notes.append("the attention slope's 95% interval includes zero: growth with KV tokens is inconclusive")
    q = np.isfinite(steps.query_tokens)
    other = fit(steps.query_tokens[q], steps.other_us[q], seed=stats.seed_for("steps", "other"))
    if other is None and q.any():
        notes.append("the steps' query tokens do not vary (or too few are known): the rest is not fitted against them")
    if at_kv is not None and att is not None and not att.x_min / EXTRAPOLATION <= at_kv <= att.x_max * EXTRAPOLATION:
        notes.append(
            f"no prediction at {at_kv:,} KV tokens: the decode steps measured {att.x_min:,.0f} to {att.x_max:,.0f}, "
            f"and a line is not carried past {EXTRAPOLATION:g}x that range"
        )
        at_kv = None
    return Growth(att, other, int(decode.sum()), int(known.sum()), at_kv, notes)
