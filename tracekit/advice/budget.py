"""Context budget: the longest context that keeps a target speed, from the decode fit."""

from __future__ import annotations

import numpy as np

from tracekit.advice.common import ci, interval, no_growth, tokens
from tracekit.advice.model import Advice, Basis, Line, Plan

DEFAULT_SHARE = 0.8  # with no target given: keep 80 % of the speed at the smallest measured context


def target_ms(b: Basis, plan: Plan) -> tuple[float, str] | None:
    """The target in ms per token, and how it was chosen."""
    if plan.target_itl_ms is not None:
        return plan.target_itl_ms, f"at most {plan.target_itl_ms:.3g} ms per token (--target-itl)"
    if plan.target_tps is not None:
        return 1000.0 / plan.target_tps, f"at least {plan.target_tps:.3g} tokens/s (--target-tps)"
    if not b.points:
        return None
    p = b.points[0]
    tps = DEFAULT_SHARE * 1000.0 / p.ms
    return 1000.0 / tps, (
        f"at least {tps:.3g} tokens/s, {100 * DEFAULT_SHARE:.0f}% of the speed at context {p.context:,} "
        "(no --target-tps given)"
    )


def solve(intercept: float, slope: float, ms: float) -> float:
    """The context where intercept + slope·context reaches ``ms`` (inf: the line never does; 0:
    not even an empty context is fast enough; NaN: a bootstrap draw without a line)."""
    if not (np.isfinite(intercept) and np.isfinite(slope)):
        return float("nan")
    if slope <= 0:
        return float("inf") if intercept <= ms else 0.0
    return max(0.0, (ms - intercept) / slope)


def _fit_text(line: Line) -> str:
    return (
        f"the decode fit over {line.n} {line.over} ({line.lo:,.0f}–{line.hi:,.0f} tokens of context): "
        f"ms/token = {line.intercept:.3g} + {line.slope * 1000:.3g} per 1k tokens "
        f"({'exact through 2 points' if line.n == 2 else f'R² {line.r2:.3f}'})"
    )


def _falling(line: Line, said: str, ms: float) -> Advice:
    """No budget from a line that does not rise with context: a budget read off it ("any context",
    "no context") would be the noise's."""
    claim = (
        f"{no_growth(line)}, so this measurement sets no context budget for {said}; measure more steps or rounds, "
        "over a wider range of contexts, on a quieter machine."
    )
    figures: dict[str, float | int | str | None] = {
        "target_ms_per_token": ms,
        "target_tokens_per_s": 1000.0 / ms,
        "budget_tokens": None,
    }
    return Advice("context-budget", claim, None, None, (_fit_text(line),), figures=figures)


def context_budget(b: Basis, plan: Plan) -> Advice | None:
    line = b.decode
    target = target_ms(b, plan)
    if line is None or target is None:
        return None
    ms, said = target
    if line.slope <= 0:
        return _falling(line, said, ms)
    x = solve(line.intercept, line.slope, ms)
    reps = None
    if line.intercepts is not None and line.slopes is not None:
        reps = np.array([solve(a, s, ms) for a, s in zip(line.intercepts, line.slopes)])
    iv = interval(reps)
    rests = [_fit_text(line) + (f", 95% interval from {line.drawn}" if reps is not None else "")]
    if reps is None:
        rests.append("speeds without repeats: no interval")
    assumptions = ["the step keeps growing along the fitted line"]
    figures: dict[str, float | int | str | None] = {"target_ms_per_token": ms, "target_tokens_per_s": 1000.0 / ms}
    if x == 0.0:
        claim = (
            f"No context keeps {said}: the fit puts even an empty context at {line.intercept:.3g} ms per token; "
            "the context is not the lever here (see the other advice)."
        )
        figures["budget_tokens"] = 0
        return Advice("context-budget", claim, None, None, tuple(rests), tuple(assumptions), figures=figures)
    where = ""
    if b.max_context and x > b.max_context:
        where = (
            f" The model's maximum context is {b.max_context:,} tokens, so every context it supports keeps {said} "
            "on this line."
        )
    if x > line.hi:
        where = (
            f"{where} This is beyond the measured range: {x / line.hi:.1f}x the largest measured context ({line.hi:,.0f}), "
            f"{x - line.hi:,.0f} tokens past it; measure there to confirm."
        )
        assumptions.append(f"the line holds {x - line.hi:,.0f} tokens beyond the largest measured context")
    elif x < line.lo:
        where += f" This is below the smallest measured context ({line.lo:,.0f}): beyond the measured range."
        assumptions.append("the line holds below the smallest measured context")
    if iv is not None and iv[0] <= 0 and not np.isfinite(iv[1]):
        where += (
            " The interval runs from no context at all to unbounded: this measurement cannot set a budget "
            "(measure more steps or rounds, on a quieter machine)."
        )
    elif iv is not None and not np.isfinite(iv[1]):
        where += " In some bootstrap draws the fit finds no growth at all, so the upper end is unbounded."
    per = f" per sequence ({b.batch} decoded together)" if b.batch > 1 else ""
    claim = f"Keep the context under {tokens(x)}{ci(iv, '{:,.0f}')} tokens to decode {said}{per}.{where}"
    figures["budget_tokens"] = x
    figures["beyond_measured_by_tokens"] = max(0.0, x - line.hi)
    return Advice(
        "context-budget",
        claim,
        None,
        None,
        tuple(rests),
        tuple(assumptions),
        gain_basis="a limit to keep, not a speed-up",
        figures=figures,
        figures_ci95={"budget_tokens": iv},
    )
