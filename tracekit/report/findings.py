"""Findings: plain-language statements the report makes about the facts, each with a kind and a severity."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tracekit.report.distance import limit_findings
from tracekit.report.fit import LineFit
from tracekit.report.model import ContextFigures, Finding, ReportFacts
from tracekit.stats import Interval, overlap

UNSYNCED_RATIO = 2.0  # synchronized prefill this many times the unsynchronized reading: a finding
OVERHEAD_LIMIT = 1.10
LAUNCH_BOUND_IDLE = 0.30
SPREAD_LIMIT = 0.5  # a 95 % interval wider than half its median is a noisy figure


def _ms(x: float) -> str:
    return f"{x:.3g} ms" if x < 1000 else f"{x / 1000:.3g} s"


def ci(iv: Interval | None, fmt: str = "{:.3g}", scale: float = 1.0) -> str:
    """`` [lo–hi]`` (with a leading space), or nothing when there is no interval."""
    if iv is None:
        return ""
    return f" [{fmt.format(iv[0] * scale)}–{fmt.format(iv[1] * scale)}]"


def includes_zero(iv: Interval | None) -> bool:
    return iv is not None and iv[0] <= 0.0 <= iv[1]


def findings_for(d: ReportFacts) -> list[Finding]:
    out: list[Finding] = []
    if not d.complete:
        out.append(
            Finding(
                "partial-run",
                "warning",
                "The capture did not finish (interrupted or crashed): the report covers the contexts that did.",
            )
        )
    for c in d.contexts:
        if c.status != "ok":
            out.append(
                Finding("failed-context", "error", f"Context {c.context_tokens} failed: {c.error or 'unknown error'}.")
            )
        elif c.error:
            out.append(Finding("trace-problem", "warning", f"Context {c.context_tokens}: {c.error}."))
    out.extend(_background(d))
    out.extend(_timing_integrity(d))
    out.extend(_noise(d))
    out.extend(_growth(d))
    out.extend(_overheads(d))
    out.extend(limit_findings(d))
    return out


def _threads(d: ReportFacts) -> list[Finding]:
    """Rounds run with different thread counts (the capture follows the cores others leave free):
    a round with fewer threads is slower, and that widens the intervals."""
    load = d.device.background_load
    counts = [] if load is None else load.threads_by_round
    if len(set(counts)) < 2:
        return []
    by_round = ", ".join(str(t) for t in counts)
    return [
        Finding(
            "threads-changed",
            "warning",
            f"The thread count changed between rounds ({by_round} threads, round by round) as other processes took "
            "cores: the rounds with fewer threads decode more slowly, which widens the intervals. Capture again on a "
            "quieter machine for one thread count throughout.",
        )
    ]


def _background(d: ReportFacts) -> list[Finding]:
    load = d.device.background_load
    if load is None or not (load.high or load.too_busy):
        return _threads(d)
    if load.too_busy:
        busy = [Finding("busy-machine", "error", f"The machine was {load.note or 'too busy to measure honestly'}.")]
    else:
        busy = [
            Finding(
                "busy-machine", "warning", f"The capture ran beside other work: {load.note or 'high background load'}."
            )
        ]
    return busy + _threads(d)


@dataclass(frozen=True)
class _Figure:
    name: str
    value: Callable[[ContextFigures], float | None]
    interval: Callable[[ContextFigures], Interval | None]
    fmt: str
    scale: float


_NOISY_FIGURES = (
    _Figure("decode ms/token", lambda c: c.decode_ms_per_token, lambda c: c.decode_ms_per_token_ci95, "{:.3g}", 1.0),
    _Figure("attention share", lambda c: c.attention_share, lambda c: c.attention_share_ci95, "{:.1f}%", 100.0),
)


def _noise(d: ReportFacts) -> list[Finding]:
    """Figures this run cannot vouch for: intervals of the smallest and largest context that
    overlap (the context effect is within the noise), or an interval wider than half its value."""
    ok = d.ok_contexts()
    out = []
    for fig in _NOISY_FIGURES:
        name, fmt, scale = fig.name, fig.fmt, fig.scale

        def shown(c: ContextFigures, fig: _Figure = fig) -> str:
            return f"{fig.fmt.format((fig.value(c) or 0.0) * fig.scale)}{ci(fig.interval(c), fig.fmt, fig.scale)}"

        have = [c for c in ok if fig.value(c) is not None and fig.interval(c) is not None]
        if len(have) >= 2:
            a, b = have[0], have[-1]
            if overlap(fig.interval(a), fig.interval(b)):
                out.append(
                    Finding(
                        "noisy-measurement",
                        "warning",
                        f"{name}: the 95% intervals at context {a.context_tokens} ({shown(a)}) and {b.context_tokens} "
                        f"({shown(b)}) overlap, so this run cannot tell them apart. "
                        + _separating_range(d, a, b, fig.name)
                        + "More --rounds, on a quieter machine, narrow the intervals too.",
                    )
                )
                continue
        for c in have:
            v, iv = fig.value(c), fig.interval(c)
            if v and iv and (iv[1] - iv[0]) / abs(v) > SPREAD_LIMIT:
                out.append(
                    Finding(
                        "noisy-measurement",
                        "warning",
                        f"{name} at context {c.context_tokens}: its 95% interval{ci(iv, fmt, scale)} spans "
                        f"{100 * (iv[1] - iv[0]) / abs(v):.0f}% of its value ({fmt.format(v * scale)})"
                        + _rounds_note(c, name)
                        + ": the rounds disagreed. Capture again with more --rounds, on a quieter machine.",
                    )
                )
                break
    return out


def _separating_range(d: ReportFacts, a: ContextFigures, b: ContextFigures, name: str) -> str:
    """The context range that would tell the ends apart: at the fitted slope of decode time, the
    largest context must add more than the two intervals' half-widths together (the noise
    measured here). Said only for decode ms/token, which the total's fit describes."""
    total = d.fits.get("total")
    ia, ib = a.decode_ms_per_token_ci95, b.decode_ms_per_token_ci95
    if name != "decode ms/token" or total is None or ia is None or ib is None:
        return ""
    noise = (ia[1] - ia[0]) / 2 + (ib[1] - ib[0]) / 2
    if total.slope <= 0:
        return (
            "The fitted slope is not positive, so no longer context is sure to separate them; try a much wider range "
            f"(e.g. {a.context_tokens:,} to {8 * b.context_tokens:,} tokens). "
        )
    needed = a.context_tokens + noise / total.slope
    target = 1 << max(0, math.ceil(math.log2(needed)))  # the next power of two: a context people pick
    model = int(d.model.max_context or 0)
    slope = f"{total.slope * 1000:.3g} ms per 1k tokens"
    if model and target > model:
        return (
            f"At the fitted slope ({slope}) and this noise ({noise:.3g} ms), even the model's maximum context of "
            f"{model:,} tokens may not separate them. "
        )
    return (
        f"A wider range would: at the fitted slope ({slope}) and this noise (the two half-widths add to "
        f"{noise:.3g} ms), capture from {a.context_tokens:,} to at least {target:,} tokens "
        f"(e.g. --context {a.context_tokens},{target}). "
    )


def _rounds_note(c: ContextFigures, name: str) -> str:
    if name != "decode ms/token" or len(c.decode_ms_by_round) < 2:
        return ""
    return f"; per-round medians {min(c.decode_ms_by_round):.3g}–{max(c.decode_ms_by_round):.3g} ms"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _slope(f: LineFit) -> str:
    return f"{f.slope * 1000:.3g}{ci(f.slope_ci95, scale=1000.0)} ms per 1k tokens"


def _trend(what: str, f: LineFit) -> str:
    """A sentence part on how ``what`` changes with context, claiming a sign only where the slope's
    interval excludes zero (or where there is no interval, as on hand-built data)."""
    if includes_zero(f.slope_ci95):
        assert f.slope_ci95 is not None
        lo, hi = (x * 1000 for x in f.slope_ci95)
        return (
            f"how {what} changes with context is inconclusive: the 95% interval of its slope runs from {lo:.3g} "
            f"to {hi:.3g} ms per 1k tokens and includes zero, so this run claims no direction ({f.quality})"
        )
    if f.slope_ci95 is not None and f.slope_ci95[1] < 0:
        lo, hi = f.slope_ci95
        return f"{what} falls {-f.slope * 1000:.3g}{ci((-hi, -lo), scale=1000.0)} ms per 1k tokens of context ({f.quality})"
    return f"{what} grows {_slope(f)} of context ({f.quality})"


def _timing_integrity(d: ReportFacts) -> list[Finding]:
    out = []
    for c in d.contexts:
        s, u = c.prefill_s, c.prefill_s_unsynced
        if s and u and u > 0 and s / u >= UNSYNCED_RATIO:
            out.append(
                Finding(
                    "unsynchronized-timer",
                    "error",
                    f"Prefill of {c.context_tokens} tokens: a timer read without synchronizing says {u:.3g} s "
                    f"({c.context_tokens / u:,.0f} tokens/s), but the device finished after {s:.3g} s "
                    f"({c.context_tokens / s:,.0f} tokens/s), {s / u:.1f}x longer. The host timer stopped when the work "
                    "was queued, not done: call torch.cuda.synchronize() (or read a result) before reading the timer.",
                )
            )
    seen: set[str] = set()
    for g in d.gaps:
        if g.name in seen or len(seen) >= 3:
            continue
        seen.add(g.name)
        pct = 100.0 * g.gap_us / g.true_dur_us if g.true_dur_us else 0.0
        out.append(
            Finding(
                "host-device-gap",
                "warning",
                f"'{g.name}' ends on the host {_ms(g.gap_us / 1000)} before the device work launched inside it does "
                f"(the work took {_ms(g.true_dur_us / 1000)}, the host span {_ms(g.host_dur_us / 1000)}): a host timer "
                f"around it under-measures by {pct:.1f}% unless it synchronizes first.",
            )
        )
    return out


def _growth(d: ReportFacts) -> list[Finding]:
    out = []
    att, other, total = d.fits.get("attention"), d.fits.get("other"), d.fits.get("total")
    if att and other:
        severity = "warning" if includes_zero(att.slope_ci95) else "info"
        out.append(
            Finding(
                "attention-growth",
                severity,
                _cap(_trend("attention", att)) + "; " + _trend("the rest of a decode step", other) + ".",
            )
        )
    if total:
        out.append(Finding("decode-fit", "info", _decode_fit(d, total)))
    if att and total:
        out.append(Finding("attention-half", "info", _attention_half(d, att)))
    return out


def _limit_words(d: ReportFacts) -> str:
    g = d.growth
    if not g.extrapolation_limit or not g.measured_max:
        return ""
    times = g.extrapolation_limit / g.measured_max
    model = int(d.model.max_context or 0)
    cap = " (the model's maximum context)" if model and g.extrapolation_limit == model else ""
    return (
        f"up to {g.extrapolation_limit:,} tokens{cap}, {times:.3g}x the largest measured context of {g.measured_max:,}"
    )


def _decode_fit(d: ReportFacts, total: LineFit) -> str:
    text = f"Decode time per token = {total.intercept:.3g} ms + {_slope(total)} of context ({total.quality})"
    preds = ", ".join(
        f"{v:.1f}{ci(d.growth.prediction_ci95.get(k), '{:.1f}')} tokens/s at {int(k.split('@')[1]):,}"
        for k, v in d.growth.predictions.items()
    )
    limit = _limit_words(d)
    if preds:
        return f"{text}; predicted {preds} (predictions are given {limit})."
    if d.growth.withheld:
        return f"{text}; no prediction: {d.growth.withheld}, so this run cannot say which way longer contexts go."
    if limit:
        return f"{text}; no prediction: the fit is trusted only {limit}."
    return text + "."


def _attention_half(d: ReportFacts, att: LineFit) -> str:
    g = d.growth
    model = int(d.model.max_context or 0)
    if not att.slope_known or g.withheld:
        return (
            "Where attention becomes half of a decode step: this run cannot say (the slope of "
            + ("attention's growth" if not att.slope_known else "the total")
            + " is inconclusive)."
        )
    x = g.attention_half_at
    if x is None:
        total = d.fits.get("total")
        slope = (
            f" ({att.slope * 1000:.3g} ms per 1k tokens, under half of the total's {total.slope * 1000:.3g})"
            if total
            else ""
        )
        return f"By these fits attention never becomes half of a decode step: its slope{slope} is too small."
    if g.measured_max and x <= g.measured_max:
        return (
            f"Attention becomes half of a decode step at about {x:,.0f} tokens of context, within the measured range."
        )
    if model and x > model:
        return (
            f"Attention does not become half of a decode step below the model's maximum context of {model:,} tokens "
            f"(the fit puts the crossing near {x:,.0f})."
        )
    if g.extrapolation_limit and x > g.extrapolation_limit:
        return (
            f"Attention stays under half of a decode step {_limit_words(d)}, as far as these fits are trusted; "
            f"the line crosses near {x:,.0f} tokens, too far beyond the measured range to claim."
        )
    return f"Attention becomes half of a decode step at about {x:,.0f} tokens of context (extrapolated, {_limit_words(d)})."


def _overheads(d: ReportFacts) -> list[Finding]:
    out = []
    worst = max((c for c in d.contexts if c.profiler_overhead), key=lambda c: c.profiler_overhead or 0.0, default=None)
    if worst and worst.profiler_overhead and worst.profiler_overhead > OVERHEAD_LIMIT:
        out.append(
            Finding(
                "profiler-overhead",
                "warning",
                f"The profiler slowed decoding by {100 * (worst.profiler_overhead - 1):.0f}% at context {worst.context_tokens}. "
                "Shares come from the trace; absolute times come from the unprofiled pass.",
            )
        )
    gpu = d.device.kind == "cuda"
    for c in d.contexts:
        if gpu and c.idle_share is not None and c.idle_share > LAUNCH_BOUND_IDLE:
            out.append(
                Finding(
                    "launch-bound",
                    "warning",
                    f"At context {c.context_tokens} the device is idle {100 * c.idle_share:.0f}% of each decode step: decoding is "
                    "launch-bound (host overhead between kernels), not kernel-bound. CUDA graphs or a fused engine help.",
                )
            )
            break
    ok = [c for c in d.contexts if c.bound_ms_per_token and c.decode_ms_per_token and c.bytes_per_step]
    if ok and d.bandwidth_gbps:
        c = ok[-1]
        ratio = (c.decode_ms_per_token or 0.0) / (c.bound_ms_per_token or 1.0)
        out.append(
            Finding(
                "bandwidth-bound",
                "info",
                f"At context {c.context_tokens} a decode step reads {(c.bytes_per_step or 0) / 1e6:,.1f} MB (weights + KV cache); at "
                f"{d.bandwidth_gbps:,.1f} GB/s ({d.bandwidth_source}) it cannot take less than {c.bound_ms_per_token:.3g} ms. "
                f"Measured: {c.decode_ms_per_token:.3g} ms, {ratio:.1f}x the bound.",
            )
        )
    return out
