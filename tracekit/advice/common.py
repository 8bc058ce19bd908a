"""Small shared pieces: intervals of replicates that may be unbounded, and the wording of numbers."""

from __future__ import annotations

import numpy as np

from tracekit import stats
from tracekit.advice.model import Line, Reps
from tracekit.stats import Interval

_HUGE = 1e300  # stands in for +inf inside a percentile (inf - inf is NaN in numpy's interpolation)


def interval(reps: Reps | None) -> Interval | None:
    """The 95 % interval of replicates; +inf replicates (no bound in that draw) stay +inf."""
    if reps is None:
        return None
    finite = np.where(np.isposinf(reps), _HUGE, reps)
    iv = stats.interval(finite)
    if iv is None:
        return None
    return (iv[0] if iv[0] < _HUGE / 10 else float("inf"), iv[1] if iv[1] < _HUGE / 10 else float("inf"))


def ratio_reps(num: Reps | None, den: Reps | None) -> Reps | None:
    """num / den replicate by replicate (NaN where den is not positive: such draws are dropped)."""
    if num is None or den is None:
        return None
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def gain_reps(before_ms: Reps | None, after_ms: Reps | None) -> Reps | None:
    """tokens/s after over before, minus 1, replicate by replicate (the inverse ratio of step times)."""
    r = ratio_reps(before_ms, after_ms)
    return None if r is None else r - 1.0


def tokens(x: float) -> str:
    return "unbounded" if not np.isfinite(x) else f"{x:,.0f}"


def ci(iv: Interval | None, fmt: str = "{:.3g}", scale: float = 1.0) -> str:
    """`` [lo–hi]`` or nothing; an unbounded end reads as such."""
    if iv is None:
        return ""

    def one(x: float) -> str:
        return "unbounded" if not np.isfinite(x) else fmt.format(x * scale)

    return f" [{one(iv[0])}–{one(iv[1])}]"


def pct(x: float) -> str:
    """A relative change: +9%, -0.5%; from doubling on, as a factor (12.3x)."""
    if x >= 1.0:
        return f"{1 + x:,.3g}x"
    return f"{100 * x:+.0f}%" if abs(x) >= 0.01 else f"{100 * x:+.1f}%"


def mb(x: float) -> str:
    return f"{x / 1e6:,.1f} MB" if x < 1e9 else f"{x / 1e9:,.2f} GB"


def no_growth(line: Line) -> str:
    """Why a decode line that does not rise with context carries no advice: a decode step reads the
    whole KV cache, so a longer context never makes it faster; a flat or falling fit is the
    measurement's noise (or speeds rounded to the same figure)."""
    how = "falls with context" if line.slope < 0 else "does not grow with context"
    return f"Inconclusive: the decode fit {how} ({line.slope * 1000:.3g} ms per 1k tokens), which a decode step cannot do"
