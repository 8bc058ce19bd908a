"""Per-context figures of a run (from its manifest and traces) and how they grow with context."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.gaps import HostDeviceGap, host_device_gaps
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.rules import CATEGORIES
from tracekit.errors import TraceFormatError
from tracekit.manifest import ContextEntry, Manifest, run_file
from tracekit.report.fit import crossing, fit_line
from tracekit.report.model import ContextFigures, Growth
from tracekit.trace.load import load_trace


def _decode_figures(res: AnalysisResult) -> tuple[float, dict[str, float], float, list[tuple[str, float]]] | None:
    """Mean attention share, per-category shares and idle share over the profiled decode steps."""
    steps = [p for p in res.phases if p.phase == "decode" and p.span_us > 0]
    if not steps:
        return None
    shares: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    idle = []
    for p in steps:
        for c in CATEGORIES:
            ct = p.categories.get(c)
            shares[c].append((ct.time_us if ct else 0.0) / p.span_us)
        idle.append(p.idle_us / p.span_us)
    mean = {c: statistics.fmean(v) for c, v in shares.items()}
    decode_kernels = res.kernels_by_phase.get("decode", [])
    top = [(k.name, k.time_us / len(steps)) for k in decode_kernels if k.category == "attention"][:5]
    return mean["attention"], mean, statistics.fmean(idle), top


def _timing_figures(f: ContextFigures, e: ContextEntry) -> None:
    t = e.timings
    f.prefill_s, f.prefill_s_unsynced = t.prefill_s, t.prefill_s_unsynced
    if t.prefill_s:
        f.prefill_tokens_per_s = e.context_tokens / t.prefill_s
    dec = t.decode_s_per_token
    if dec:
        # The typical step (median: one step the OS interrupted does not move it) for per-token
        # figures and fits; tokens/s is the throughput over every step, as a user would time it.
        f.decode_ms_per_token = 1000.0 * statistics.median(dec)
        f.tokens_per_s = len(dec) / sum(dec)
    f.profiled_tokens_per_s = t.profiled_tokens_per_s
    if f.tokens_per_s and t.profiled_tokens_per_s:
        f.profiler_overhead = f.tokens_per_s / t.profiled_tokens_per_s


def context_figures(
    run_dir: Path, m: Manifest, bw: float | None, *, partial: bool = False
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
        dec = e.timings.decode_s_per_token
        ctx_mid = e.context_tokens + len(dec) / 2 if dec else e.context_tokens
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
                trace = load_trace(path, partial=partial)
            except TraceFormatError as exc:
                problem = re.split(r"[.;] [Uu]se --partial", exc.problem)[0]
                f.error = f"trace file {e.trace}: {problem}; its trace figures are left out"
                if exc.has_prefix and not partial:
                    f.error += " (report --partial uses the usable prefix)"
                continue
            if trace.partial:
                f.error = f"trace file {e.trace} is truncated; its figures come from the usable prefix only"
            res = analyze_trace(trace)
            gaps.extend(host_device_gaps(trace))
            f.top_kernels = [(k.name, k.category, k.rule, k.count, k.time_us) for k in res.kernels[:12]]
            figs = _decode_figures(res)
            if figs and f.decode_ms_per_token is not None:
                share, cats, idle, top = figs
                f.attention_share = share
                f.attention_ms_per_token = share * f.decode_ms_per_token
                f.categories_ms_per_token = {c: s * f.decode_ms_per_token for c, s in cats.items() if s > 0}
                f.idle_share = idle
                f.top_attention_kernels = top
    return out, gaps


def growth(contexts: list[ContextFigures]) -> Growth:
    """Least-squares fits of ms/token = a + b·context for the total, attention and the rest;
    tokens/s predicted at 2x and 4x the largest context; where attention is half a step."""
    ok = [c for c in contexts if c.status == "ok" and c.decode_ms_per_token is not None]
    xs = [float(c.context_tokens) for c in ok]
    g = Growth()
    total = fit_line(xs, [c.decode_ms_per_token or 0.0 for c in ok])
    if total:
        g.fits["total"] = total
    with_att = [c for c in ok if c.attention_ms_per_token is not None]
    att_x = [float(c.context_tokens) for c in with_att]
    att = fit_line(att_x, [c.attention_ms_per_token or 0.0 for c in with_att])
    other = fit_line(att_x, [(c.decode_ms_per_token or 0.0) - (c.attention_ms_per_token or 0.0) for c in with_att])
    if att:
        g.fits["attention"] = att
    if other:
        g.fits["other"] = other
    if total and xs:
        top = max(xs)
        for k in (2, 4):
            ms = total.at(top * k)
            if ms > 0:
                g.predictions[f"tokens_per_s@{int(top * k)}"] = 1000.0 / ms
    g.attention_half_at = crossing(att, total) if att and total else None
    return g
