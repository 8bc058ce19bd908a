"""The report's answer first: one paragraph on how decode cost changed from the smallest to the
largest context, what attention and the bandwidth bound explain of it, and whether the timer
(and the machine) could be trusted, every figure with its 95 % interval.

Built from the report data alone (facts and findings), so Markdown, HTML and JSON show the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tracekit import stats
from tracekit.report.distance import distance_line
from tracekit.report.findings import ci
from tracekit.report.model import ReportData
from tracekit.report.uncertainty import decode_reps, difference
from tracekit.stats import Interval


@dataclass
class Headline:
    text: str
    smallest_context: int | None = None
    largest_context: int | None = None
    figures: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, Interval | None] = field(default_factory=dict)
    timer_honest: bool = True
    machine_quiet: bool = True
    conclusive: bool = True


def _v(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None else fmt.format(x)


def headline(d: ReportData) -> Headline:
    ok = d.ok_contexts()
    timer, honest = _timer(d)
    load = d.device.background_load
    quiet = load is None or not (load.high or load.too_busy)
    machine = ""
    if load is not None and (load.high or load.too_busy):
        busy = (
            f"other processes used {load.mean_cores or 0.0:.1f} of {load.cpus} cores on average "
            f"(at most {load.max_cores or 0.0:.1f} in a round)"
        )
        if load.too_busy:
            machine = (
                f" But the machine was too busy to measure honestly: {busy}, so not even one core was free; "
                "treat every figure here as rough and capture again on a quieter machine."
            )
        else:
            machine = f" Other work ran beside the capture: {busy}; the intervals include its effect."
    if not ok:
        return Headline(
            "No decode step was measured (every context failed, or --tokens 1 produced only the prefill's token): "
            "there is nothing to compare." + machine,
            timer_honest=honest,
            machine_quiet=quiet,
        )
    a, b = ok[0], ok[-1]
    if a is b:
        text = (
            f"Only context {a.context_tokens} was measured: decode takes {_v(a.decode_ms_per_token)}"
            f"{ci(a.decode_ms_per_token_ci95)} ms/token ({_v(a.tokens_per_s, '{:.1f}')}{ci(a.tokens_per_s_ci95, '{:.1f}')} "
            f"tokens/s). Capture two or more context lengths to see how the cost grows. {timer}{machine}"
        )
        return Headline(text, a.context_tokens, a.context_tokens, timer_honest=honest, machine_quiet=quiet)
    h = Headline("", a.context_tokens, b.context_tokens, timer_honest=honest, machine_quiet=quiet)
    x, y = a.decode_ms_per_token or 0.0, b.decode_ms_per_token or 0.0
    added_reps, added_ci = difference(a, b, "decode")
    ra, rb = decode_reps(a), decode_reps(b)
    pct_ci = None if ra is None or rb is None else stats.interval(100.0 * (rb / ra - 1.0))
    att_added = None
    att_ci = None
    if a.attention_ms_per_token is not None and b.attention_ms_per_token is not None:
        att_added = b.attention_ms_per_token - a.attention_ms_per_token
        att_ci = difference(a, b, "attention")[1]
    bound = None
    bound_share = bound_share_ci = None
    if a.bound_ms_per_token is not None and b.bound_ms_per_token is not None:
        bound = b.bound_ms_per_token - a.bound_ms_per_token
        if y - x > 0:
            bound_share = bound / (y - x)
        if added_reps is not None:
            bound_share_ci = stats.interval(
                np.where(added_reps > 0, bound / np.where(added_reps > 0, added_reps, 1.0), np.nan)
            )
    h.figures = {
        "decode_ms_per_token_smallest": x,
        "decode_ms_per_token_largest": y,
        "tokens_per_s_smallest": a.tokens_per_s,
        "tokens_per_s_largest": b.tokens_per_s,
        "increase_pct": 100.0 * (y / x - 1.0) if x else None,
        "added_ms_per_token": y - x,
        "attention_added_ms_per_token": att_added,
        "attention_share_smallest": a.attention_share,
        "attention_share_largest": b.attention_share,
        "bandwidth_bound_added_ms_per_token": bound,
        "bandwidth_bound_share_of_added": bound_share,
    }
    h.intervals = {
        "decode_ms_per_token_smallest": a.decode_ms_per_token_ci95,
        "decode_ms_per_token_largest": b.decode_ms_per_token_ci95,
        "tokens_per_s_smallest": a.tokens_per_s_ci95,
        "tokens_per_s_largest": b.tokens_per_s_ci95,
        "increase_pct": pct_ci,
        "added_ms_per_token": added_ci,
        "attention_added_ms_per_token": att_ci,
        "attention_share_smallest": a.attention_share_ci95,
        "attention_share_largest": b.attention_share_ci95,
        "bandwidth_bound_share_of_added": bound_share_ci,
    }
    h.conclusive = not stats.overlap(a.decode_ms_per_token_ci95, b.decode_ms_per_token_ci95)
    pct = h.figures["increase_pct"]
    parts = [
        f"From {a.context_tokens:,} to {b.context_tokens:,} tokens of context, decode went from {x:.3g}"
        f"{ci(a.decode_ms_per_token_ci95)} to {y:.3g}{ci(b.decode_ms_per_token_ci95)} ms/token "
        f"({_v(pct, '{:+.0f}')}%{ci(pct_ci, '{:+.0f}')}; {_v(a.tokens_per_s, '{:.1f}')} → {_v(b.tokens_per_s, '{:.1f}')} "
        f"tokens/s), {y - x:.3g}{ci(added_ci)} ms more per token."
    ]
    if not h.conclusive:
        parts.append(" The two intervals overlap: this run cannot tell the two contexts apart.")
    if att_added is not None:
        share = ""
        if a.attention_share is not None and b.attention_share is not None:
            share = (
                f" (its share of a step went from {100 * a.attention_share:.1f}%{ci(a.attention_share_ci95, '{:.1f}', 100)}"
                f" to {100 * b.attention_share:.1f}%{ci(b.attention_share_ci95, '{:.1f}', 100)})"
            )
        parts.append(f" Attention accounts for {att_added:.3g}{ci(att_ci)} ms of the added cost{share}.")
    if bound is not None and bound_share is None:
        # No added cost to explain (the largest context was not slower): say what the bound adds.
        parts.append(f" Reading the longer KV cache at full bandwidth would add {bound:.3g} ms per token.")
    elif bound is not None and bound_share is not None:
        of = f", {100 * bound_share:.0f}%{ci(bound_share_ci, '{:.0f}', 100)} of it"
        rest = (
            "the rest is compute and overhead"
            if bound_share < 0.95
            else "reading the longer cache at full bandwidth would account for the added cost"
        )
        parts.append(f" The memory-bandwidth bound (more KV cache to read) explains {bound:.3g} ms{of}; {rest}.")
    else:
        parts.append(" The bandwidth bound is unknown (pass --peak-bandwidth GBPS).")
    distance = distance_line(d)
    if distance:
        parts.append(f" {distance}")
    h.text = "".join(parts) + f" {timer}{machine}"
    return h


def _timer(d: ReportData) -> tuple[str, bool]:
    """Whether the timings can be trusted as timings: synchronized, and no host span that ends
    before its device work (from the findings)."""
    kinds = {f.kind for f in d.findings}
    if "unsynchronized-timer" in kinds:
        return (
            "The timer was NOT honest: a reading taken without synchronizing stopped before the device finished (see the findings).",
            False,
        )
    ratios = [c.prefill_s / c.prefill_s_unsynced for c in d.ok_contexts() if c.prefill_s and c.prefill_s_unsynced]
    agree = f" (the unsynchronized prefill reading is within {max(ratios):.2f}x of it)" if ratios else ""
    if "host-device-gap" in kinds:
        return (
            f"The timer was honest: every step was timed after synchronizing{agree}; host spans in the trace end before their device work, so read them with care.",
            True,
        )
    return f"The timer was honest: every step was timed after synchronizing{agree}.", True
