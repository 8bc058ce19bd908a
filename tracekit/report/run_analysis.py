"""Per-context figures of a run (from its manifest and traces) and how they grow with context."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.rules import CATEGORIES
from tracekit.analysis.timer_gaps import HostDeviceGap, timer_underreads
from tracekit.errors import TraceFormatError
from tracekit.limits.model import ModelShape
from tracekit.limits.roofline import Roof, achieved, attention_work, decode_ceiling_tokens_per_s, decode_gemm_work
from tracekit.manifest import ContextEntry, Manifest, run_file
from tracekit.report.fit import crossing, fit_line, fit_replicates, with_intervals
from tracekit.report.model import ContextFigures, Growth
from tracekit.report.uncertainty import attention_reps, decode_reps, draw_decode, draw_share, stacked
from tracekit.stats import Interval, interval
from tracekit.trace.read import ReadOptions, load_trace


def _decode_figures(
    res: AnalysisResult, step_round: dict[int, int]
) -> tuple[dict[str, float], float, list[tuple[str, float]], dict[str, list[list[float]]]] | None:
    """Per-category mean shares and idle share over the profiled decode steps, the top attention
    kernels, and each step's share of every category grouped by the round that recorded it."""
    steps = [p for p in res.phases if p.phase == "decode" and p.span_us > 0]
    if not steps:
        return None
    shares: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    idle = []
    by_round: dict[str, dict[int, list[float]]] = {c: {} for c in CATEGORIES}
    for p in steps:
        r = step_round.get(p.step or 0, 0)
        for c in CATEGORIES:
            ct = p.categories.get(c)
            shares[c].append((ct.time_us if ct else 0.0) / p.span_us)
            by_round[c].setdefault(r, []).append(shares[c][-1])
        idle.append(p.idle_us / p.span_us)
    mean = {c: statistics.fmean(v) for c, v in shares.items()}
    decode_kernels = res.kernels_by_phase.get("decode", [])
    top = [(k.name, k.time_us / len(steps)) for k in decode_kernels if k.category == "attention"][:5]
    samples = {
        c: [rounds[r] for r in sorted(rounds)] for c, rounds in by_round.items() if mean[c] > 0 or c == "attention"
    }
    return mean, statistics.fmean(idle), top, samples


def _iv(x: list[float] | None) -> Interval | None:
    return None if not x or len(x) != 2 else (float(x[0]), float(x[1]))


def _timing_figures(f: ContextFigures, e: ContextEntry) -> None:
    t = e.timings
    f.prefill_s, f.prefill_s_unsynced, f.prefill_s_ci95 = t.prefill_s, t.prefill_s_unsynced, _iv(t.prefill_s_ci95)
    f.prefill_samples_s = list(t.prefill_s_repeats)
    if t.prefill_s:
        f.prefill_tokens_per_s = e.context_tokens / t.prefill_s
    f.ttft_s, f.ttft_s_ci95 = t.ttft_s, _iv(t.ttft_s_ci95)
    f.itl_ms_p50, f.itl_ms_p90, f.itl_ms_p99 = t.itl_ms_p50, t.itl_ms_p90, t.itl_ms_p99
    # The typical step (median: one step the OS interrupted does not move it), with its interval;
    # tokens/s is its inverse. The same figures as the manifest's, drawn with the same seed.
    rounds = t.decode_rounds()
    f.rounds = t.rounds or len(rounds)
    f.decode_samples_ms = [[1000.0 * s for s in r] for r in rounds]
    draw_decode(f)
    f.profiled_tokens_per_s = t.profiled_tokens_per_s
    if f.tokens_per_s and t.profiled_tokens_per_s:
        f.profiler_overhead = f.tokens_per_s / t.profiled_tokens_per_s


def _step_rounds(e: ContextEntry) -> dict[int, int]:
    return {step: r for r, steps in enumerate(e.timings.profiled_steps_by_round) for step in steps}


def limit_figures(f: ContextFigures, shape: ModelShape, roof: Roof | None, context: float) -> None:
    """Attention, the weight GEMMs and the whole step of a decode step at ``context`` tokens: bytes,
    FLOPs, and what the measured times achieved against ``roof``. The step is the timed
    (unprofiled) median; attention and GEMM times are its profiled shares of it."""
    ctx = int(round(context))
    att_work = attention_work(shape, query_tokens=1, kv_tokens=ctx)
    gemm_work = decode_gemm_work(shape, 1)
    if f.attention_ms_per_token:
        f.attention = achieved(att_work, f.attention_ms_per_token / 1e3, roof, shape.dtype)
    gemm_ms = f.categories_ms_per_token.get("gemm")
    if gemm_ms:
        f.gemm = achieved(gemm_work, gemm_ms / 1e3, roof, shape.dtype)
    if f.decode_ms_per_token:
        f.step = achieved(att_work + gemm_work, f.decode_ms_per_token / 1e3, roof, shape.dtype)
    if roof is not None:
        f.ceiling_tokens_per_s = decode_ceiling_tokens_per_s(shape, ctx, roof)


def context_figures(
    run_dir: Path,
    m: Manifest,
    bw: float | None,
    *,
    partial: bool = False,
    read: ReadOptions | None = None,
    shape: ModelShape | None = None,
    roof: Roof | None = None,
) -> tuple[list[ContextFigures], list[HostDeviceGap]]:
    kv_per_token = m.model.kv_bytes_per_token()
    weight_bytes = int(m.model.parameter_bytes or 0)
    out: list[ContextFigures] = []
    gaps: list[HostDeviceGap] = []
    for e in m.contexts:
        f = ContextFigures(
            context_tokens=e.context_tokens, status=e.status, error=e.error, profiled_steps=e.profiled_steps
        )
        out.append(f)
        if e.status != "ok":
            continue
        _timing_figures(f, e)
        t = e.timings
        per_round = len(t.decode_s_by_round[0]) if t.decode_s_by_round else len(t.decode_s_per_token)
        ctx_mid = e.context_tokens + per_round / 2
        if kv_per_token and weight_bytes:
            f.bytes_per_step = int(weight_bytes + kv_per_token * ctx_mid)
            if bw:
                f.bound_ms_per_token = f.bytes_per_step / (bw * 1e9) * 1e3
                f.attention_bound_ms_per_token = kv_per_token * ctx_mid / (bw * 1e9) * 1e3
        if e.trace:
            path = run_file(run_dir, e.trace)
            if not path.exists():
                f.error = f"trace file {e.trace} is missing; its trace figures are left out"
                continue
            try:
                trace = load_trace(path, partial=partial, options=read)
            except TraceFormatError as exc:
                f.error = f"trace file {e.trace}: {exc.problem}; its trace figures are left out"
                if exc.has_prefix and not partial:
                    f.error += " (report --partial uses the usable prefix)"
                continue
            if trace.partial:
                f.error = f"trace file {e.trace} is truncated; its figures come from the usable prefix only"
            res = analyze_trace(trace)
            gaps.extend(timer_underreads(trace))
            f.top_kernels = [(k.name, k.category, k.rule, k.count, k.time_us) for k in res.kernels[:12]]
            figs = _decode_figures(res, _step_rounds(e))
            if figs and f.decode_ms_per_token is not None:
                cats, idle, top, share_samples = figs
                f.attention_share_samples = share_samples.get("attention", [])
                f.category_share_samples = share_samples
                draw_share(f)
                f.categories_ms_per_token = {c: s * f.decode_ms_per_token for c, s in cats.items() if s > 0}
                f.idle_share = idle
                f.top_attention_kernels = top
        if shape is not None:
            limit_figures(f, shape, roof, ctx_mid)
    return out, gaps


# Predictions and the crossing are given up to this many times the largest measured context: a
# straight line fitted to a few contexts says little about the cost far beyond them.
EXTRAPOLATION = 2.0


def growth(contexts: list[ContextFigures], max_context: int | None = None) -> Growth:
    """Least-squares fits of ms/token = a + b·context for the total, attention and the rest, with
    95 % intervals of slope and intercept (the fit redone on every bootstrap replicate of the
    points). Where the slope of the total is known (its interval excludes zero), tokens/s is
    predicted at 2x the largest context, with an interval, and where attention becomes half a step
    is given when the attention slope is known too; neither past ``EXTRAPOLATION`` times the
    largest measured context nor past the model's ``max_context``."""
    ok = [c for c in contexts if c.status == "ok" and c.decode_ms_per_token is not None]
    xs = [float(c.context_tokens) for c in ok]
    g = Growth()
    total_reps = stacked(ok, decode_reps)
    total = fit_line(xs, [c.decode_ms_per_token or 0.0 for c in ok])
    if total:
        g.fits["total"] = total = with_intervals(total, xs, total_reps)
    with_att = [c for c in ok if c.attention_ms_per_token is not None]
    att_x = [float(c.context_tokens) for c in with_att]
    att = fit_line(att_x, [c.attention_ms_per_token or 0.0 for c in with_att])
    other = fit_line(att_x, [(c.decode_ms_per_token or 0.0) - (c.attention_ms_per_token or 0.0) for c in with_att])
    att_reps = stacked(with_att, attention_reps)
    dec_reps = stacked(with_att, decode_reps)
    if att:
        g.fits["attention"] = att = with_intervals(att, att_x, att_reps)
    if other:
        rest = None if att_reps is None or dec_reps is None else dec_reps - att_reps
        g.fits["other"] = with_intervals(other, att_x, rest)
    if not (total and xs):
        return g
    top = max(xs)
    g.measured_max = int(top)
    limit = int(top * EXTRAPOLATION)
    if max_context:
        limit = min(limit, int(max_context))
    g.extrapolation_limit = limit
    # Hand-built fits without intervals claim nothing either: a direction needs an interval.
    if not total.slope_known:
        g.withheld = "the slope of the total's fit is inconclusive (its 95% interval includes zero)"
        return g
    fitted = fit_replicates(xs, total_reps) if total_reps is not None and len(set(xs)) > 1 else None
    # One prediction, at twice the longest measured context: EXTRAPOLATION allows no further.
    x = top * EXTRAPOLATION
    ms = total.at(x) if x <= limit else 0.0
    if ms > 0:
        key = f"tokens_per_s@{int(x)}"
        g.predictions[key] = 1000.0 / ms
        if fitted is not None:
            at = fitted[0] + fitted[1] * x
            ci = interval(np.where(at > 0, 1000.0 / np.where(at > 0, at, 1.0), np.nan))
            if ci is not None:
                g.prediction_ci95[key] = ci
    if att and att.slope_known:
        g.attention_half_at = crossing(att, total)
    return g
