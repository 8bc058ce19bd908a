"""Least-squares line fits, and their intervals from bootstrap replicates of the fitted points."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from tracekit import stats


@dataclass(frozen=True)
class LineFit:
    intercept: float
    slope: float
    r2: float
    n: int
    slope_ci95: tuple[float, float] | None = None
    intercept_ci95: tuple[float, float] | None = None

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x

    @property
    def exact(self) -> bool:
        """Two points: the line goes through both, whatever they are; R² says nothing then."""
        return self.n == 2

    @property
    def quality(self) -> str:
        """How well the line fits, in words: ``exact through 2 points`` or ``R² 0.987 over 4 contexts``."""
        return "exact through 2 points" if self.exact else f"R² {self.r2:.3f} over {self.n} contexts"

    @property
    def slope_known(self) -> bool:
        """Whether the slope's 95 % interval excludes zero (a direction this run can claim)."""
        iv = self.slope_ci95
        return iv is not None and (iv[0] > 0.0 or iv[1] < 0.0)


def fit_line(xs: list[float], ys: list[float]) -> LineFit | None:
    """Fit y = a + b·x (``stats.line``). Needs two distinct x values."""
    fitted = stats.line(xs, ys)
    if fitted is None:
        return None
    return LineFit(*fitted, len(xs))


def crossing(att: LineFit, total: LineFit, share: float = 0.5) -> float | None:
    """Context where ``att`` reaches ``share`` of ``total`` (None if it never does for x > 0)."""
    denom = att.slope - share * total.slope
    if denom <= 0:
        return None
    x = (share * total.intercept - att.intercept) / denom
    return x if x > 0 else 0.0


fit_replicates = stats.line_replicates


def with_intervals(f: LineFit, xs: list[float], reps: NDArray[np.float64] | None) -> LineFit:
    """``f`` with the 95 % intervals of its slope and intercept from replicates of its points."""
    if reps is None or len(set(xs)) < 2:
        return f
    a, b = fit_replicates(xs, reps)
    return replace(f, slope_ci95=stats.interval(b), intercept_ci95=stats.interval(a))
