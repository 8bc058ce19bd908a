"""Progressive generation: a long generation as measured by the fit, against one that resets its
context to its last W tokens every K tokens (each reset re-prefills those W tokens).

A decode step at context c takes a + b·c ms (the decode fit), so n tokens from context c0 take
n·a + b·(n·c0 + n(n-1)/2) ms. Both plans start from the same prompt, prefilled once; the reset
plan adds one prefill of W tokens per reset, from the prefill fit (seconds against prompt tokens).
Every figure is computed replicate by replicate, so the time saved carries the spread of both fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracekit.advice.common import ci, interval, no_growth, pct, ratio_reps
from tracekit.advice.model import Advice, Basis, Line, Plan, Reps

PARTS = 4  # with no --every: reset four times over the generation


@dataclass(frozen=True)
class Schedule:
    generate: int
    prompt: int
    keep: int
    every: int
    chosen: bool  # tracekit chose it (no flags given)

    def segments(self) -> list[tuple[int, int, int]]:
        """(how many, tokens, starting context) of the stretches between resets: the first from the
        prompt, then whole stretches from the kept tokens, then what is left."""
        first = min(self.every, self.generate)
        rest = self.generate - first
        out = [(1, first, self.prompt)]
        if rest // self.every:
            out.append((rest // self.every, self.every, self.keep))
        if rest % self.every:
            out.append((1, rest % self.every, self.keep))
        return out

    @property
    def resets(self) -> int:
        return sum(k for k, _, _ in self.segments()) - 1


def schedule(b: Basis, plan: Plan) -> Schedule | None:
    top = b.points[-1].context if b.points else None
    low = b.points[0].context if b.points else None
    prompt = plan.prompt if plan.prompt is not None else top
    generate = plan.generate if plan.generate is not None else top
    keep = plan.keep if plan.keep is not None else low
    if prompt is None or generate is None or keep is None:
        return None
    every = plan.every if plan.every is not None else max(1, generate // PARTS)
    chosen = plan.generate is None and plan.every is None and plan.keep is None
    return Schedule(generate, prompt, keep, every, chosen)


def _past_max_context(b: Basis, sch: Schedule) -> str:
    """What to say when a plan runs past the model's longest context ("" when it does not, or the
    model's facts do not say): the model cannot decode there, so those steps are the line's alone."""
    most = b.max_context
    plain = sch.prompt + sch.generate
    if not most or plain <= most:
        return ""
    reset = max(c0 + n for _, n, c0 in sch.segments())
    also = (
        f", and the reset plan to {reset:,}"
        if reset > most
        else f"; the reset plan stays within it (at most {reset:,})"
    )
    return (
        f"the plain plan runs to context {plain:,}, past the model's maximum context of {most:,}{also}: "
        "the model cannot decode past its maximum as it is, so those steps are the fitted line's, not the model's"
    )


def _lead(past: str) -> str:
    return f"{past[0].upper()}{past[1:]}. " if past else ""


def _falling(b: Basis, line: Line, sch: Schedule, past: str) -> Advice:
    """No comparison from a decode line that does not rise with context: both plans' times would be
    the noise's (far enough out, below zero)."""
    claim = _lead(past) + (
        f"{no_growth(line)}, so this measurement cannot compare generating {sch.generate:,} tokens with "
        f"resetting to the last {sch.keep:,} every {sch.every:,}; measure more steps or rounds, over a wider "
        "range of contexts, on a quieter machine."
    )
    figures: dict[str, float | int | str | None] = {
        "generate": sch.generate,
        "prompt": sch.prompt,
        "keep": sch.keep,
        "every": sch.every,
        "resets": sch.resets,
    }
    return Advice(
        "progressive", claim, None, None, (f"the decode fit over {line.n} {line.over} ({b.source})",), figures=figures
    )


def _decode_ms(a: Reps | float, s: Reps | float, segments: list[tuple[int, int, int]]) -> Reps | float:
    total: Reps | float = 0.0
    for k, n, c0 in segments:
        total = total + k * (n * a + s * (n * c0 + n * (n - 1) / 2))
    return total


def _ms_reps(prefill: Line, tokens: int) -> Reps | None:
    """Replicates of the prefill fit at ``tokens``, in ms (a negative fitted time is none)."""
    reps = prefill.reps_at(tokens)
    return None if reps is None else np.maximum(0.0, reps) * 1000


def progressive(b: Basis, plan: Plan) -> Advice | None:
    line = b.decode
    sch = schedule(b, plan)
    if line is None or sch is None:
        return None
    past = _past_max_context(b, sch)
    if line.slope <= 0:
        return _falling(b, line, sch, past)
    plain_segs = [(1, sch.generate, sch.prompt)]
    reset_segs = sch.segments()
    resets = sch.resets
    plain = float(_decode_ms(line.intercept, line.slope, plain_segs))
    reset_decode = float(_decode_ms(line.intercept, line.slope, reset_segs))
    a_r, s_r = line.intercepts, line.slopes
    plain_r = None if a_r is None or s_r is None else np.asarray(_decode_ms(a_r, s_r, plain_segs))
    reset_r = None if a_r is None or s_r is None else np.asarray(_decode_ms(a_r, s_r, reset_segs))
    rests = [f"the decode fit over {line.n} {line.over} ({b.source})"]
    assumptions = ["the model needs only the last tokens it keeps (quality after a reset is not measured here)"]
    top = max(sch.prompt + sch.generate, line.hi)
    if top > line.hi:
        assumptions.append(
            f"the decode line holds to context {sch.prompt + sch.generate:,} "
            f"({(sch.prompt + sch.generate) / line.hi:.1f}x the largest measured context, {line.hi:,.0f})"
        )
    figures: dict[str, float | int | str | None] = {
        "generate": sch.generate,
        "prompt": sch.prompt,
        "keep": sch.keep,
        "every": sch.every,
        "resets": resets,
        "plain_decode_s": plain / 1000,
        "reset_decode_s": reset_decode / 1000,
    }
    each = f" for each of {b.batch} sequences decoded together" if b.batch > 1 else ""
    plan_text = f"Generating {sch.generate:,} tokens from a {sch.prompt:,}-token prompt{each}" + (
        " (a plan tracekit chose; pick yours with --generate, --prompt, --keep, --every)" if sch.chosen else ""
    )
    plan_text = _lead(past) + plan_text
    prefill = b.prefill
    if prefill is not None:
        # A batch re-prefills every sequence's kept tokens (the prefill line is against all of them).
        first = max(0.0, prefill.at(b.batch * sch.prompt)) * 1000
        again = max(0.0, prefill.at(b.batch * sch.keep)) * 1000
        rests.append(f"the prefill fit over {prefill.n} {prefill.over} (seconds against prompt tokens)")
        again_r, first_r = _ms_reps(prefill, b.batch * sch.keep), _ms_reps(prefill, b.batch * sch.prompt)
        if again <= 0:
            assumptions.append(
                f"the prefill line puts re-prefilling {b.batch * sch.keep:,} tokens at no time (its intercept is below "
                "zero): the reset's cost is missing, so the saving is an upper bound"
            )
        if not prefill.lo <= b.batch * sch.keep <= prefill.hi:
            assumptions.append(f"the prefill line holds at {b.batch * sch.keep:,} tokens, outside its measured range")
        source = "measured"
    elif b.peak_tflops and b.shape is not None:
        flops = 2.0 * b.shape.params
        first, again = (
            flops * b.batch * sch.prompt / (b.peak_tflops * 1e12) * 1000,
            flops * b.batch * sch.keep / (b.peak_tflops * 1e12) * 1000,
        )
        first_r = again_r = None
        assumptions.append(
            f"no prefill was measured: a prefill of n tokens takes at least 2·{b.shape.params / 1e9:.2f}G·n FLOPs at "
            f"the device's {b.peak_tflops:g} TFLOP/s dense peak (a floor: a real prefill is slower, so the saving is smaller)"
        )
        source = "floor"
    else:
        saved = plain - reset_decode
        breakeven = saved / resets / 1000 if resets else None
        claim = (
            f"{plan_text}, resetting to the last {sch.keep:,} tokens every {sch.every:,} saves {saved / 1000:.3g} s of decode "
            f"({resets:,} resets)"
            + (
                f"; it pays while one re-prefill of {sch.keep:,} tokens takes under {breakeven:.3g} s"
                if breakeven
                else ""
            )
            + " (no prefill was measured)."
        )
        figures["breakeven_prefill_s"] = breakeven
        return Advice("progressive", claim, None, None, tuple(rests), tuple(assumptions), figures=figures)
    plain_total = first + plain
    reset_total = first + reset_decode + resets * again
    if plain_total <= 0 or reset_total <= 0:
        return None  # a line through steps of no time: no plan to compare
    saved = plain_total - reset_total
    gain = plain_total / reset_total - 1.0
    saved_ci = gain_ci = None
    if plain_r is not None and reset_r is not None:
        f_r = first_r if first_r is not None else first
        g_r = again_r if again_r is not None else again
        p_tot = f_r + plain_r
        r_tot = f_r + reset_r + resets * g_r
        saved_ci = interval(np.asarray((p_tot - r_tot) / 1000))
        gain_ci = interval(np.asarray(ratio_reps(np.asarray(p_tot), np.asarray(r_tot))) - 1.0)
    tps_plain = sch.generate / plain_total * 1000
    tps_reset = sch.generate / reset_total * 1000
    breakeven = (plain - reset_decode) / resets / 1000 if resets else None
    verdict = "saves" if saved > 0 else "costs"
    claim = (
        f"{plan_text} takes {plain_total / 1000:.3g} s ({tps_plain:.3g} tokens/s on average, prefill included). "
        f"Resetting the context to its last {sch.keep:,} tokens every {sch.every:,} tokens ({resets:,} resets, each "
        f"re-prefilling {sch.keep:,} tokens in {again / 1000:.3g} s{' at least' if source == 'floor' else ''}) takes "
        f"{reset_total / 1000:.3g} s ({tps_reset:.3g} tokens/s): it {verdict} {abs(saved) / 1000:.3g}"
        f"{ci(saved_ci)} s, {pct(gain)}{ci(gain_ci, '{:+.0f}%', 100)} tokens/s."
    )
    if gain_ci is not None and gain_ci[0] <= 0 <= gain_ci[1]:
        claim += " The interval includes no change: this run cannot say the reset helps."
    figures.update(
        {
            "plain_total_s": plain_total / 1000,
            "reset_total_s": reset_total / 1000,
            "saved_s": saved / 1000,
            "reprefill_s": again / 1000,
            "breakeven_prefill_s": breakeven,
        }
    )
    return Advice(
        "progressive",
        claim,
        gain,
        gain_ci,
        tuple(rests),
        tuple(assumptions),
        gain_basis=f"average tokens/s over the {sch.generate:,}-token generation, prefills included",
        figures=figures,
        figures_ci95={"saved_s": saved_ci},
    )
