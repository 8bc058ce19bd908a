"""Compute the report's data from a capture run (manifest + traces). Renderers only format it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.gaps import HostDeviceGap, host_device_gaps
from tracekit.analysis.rules import CATEGORIES
from tracekit.errors import UserError
from tracekit.manifest import Manifest, read_manifest
from tracekit.report import bandwidth
from tracekit.report.findings import Finding, findings_for
from tracekit.report.fit import LineFit, crossing, fit_line
from tracekit.trace.load import load_trace

SCHEMA = "tracekit.report/1"


@dataclass
class ContextFigures:
    context_tokens: int
    status: str
    prefill_s: float | None = None
    prefill_s_unsynced: float | None = None
    prefill_tokens_per_s: float | None = None
    decode_ms_per_token: float | None = None
    tokens_per_s: float | None = None
    profiled_tokens_per_s: float | None = None
    attention_ms_per_token: float | None = None
    attention_share: float | None = None
    categories_ms_per_token: dict[str, float] = field(default_factory=dict)
    idle_share: float | None = None
    profiler_overhead: float | None = None
    bound_ms_per_token: float | None = None
    attention_bound_ms_per_token: float | None = None
    bytes_per_step: int | None = None
    profiled_steps: int = 0
    top_attention_kernels: list[tuple[str, float]] = field(default_factory=list)
    top_kernels: list[tuple[str, str, str, int, float]] = field(default_factory=list)  # name, category, rule, count, µs
    error: str | None = None


@dataclass
class ReportData:
    run: str
    device: dict[str, Any]
    model: dict[str, Any]
    settings: dict[str, Any]
    contexts: list[ContextFigures]
    fits: dict[str, LineFit]
    predictions: dict[str, float]
    attention_half_at: float | None
    bandwidth_gbps: float | None
    bandwidth_source: str
    findings: list[Finding]
    complete: bool
    gaps: list[HostDeviceGap] = field(default_factory=list)

    def ok_contexts(self) -> list[ContextFigures]:
        return [c for c in self.contexts if c.status == "ok" and c.decode_ms_per_token is not None]


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


def context_figures(run_dir: Path, m: Manifest, bw: float | None) -> tuple[list[ContextFigures], list[HostDeviceGap]]:
    facts = m.model
    dtype_bytes = int(facts.get("dtype_bytes") or 2)
    kv_per_token = (
        2 * int(facts.get("layers", 0)) * int(facts.get("kv_heads", 0)) * int(facts.get("head_dim", 0)) * dtype_bytes
    )
    weight_bytes = int(facts.get("parameter_bytes") or 0)
    out: list[ContextFigures] = []
    gaps: list[HostDeviceGap] = []
    for e in m.contexts:
        f = ContextFigures(
            context_tokens=e.context_tokens, status=e.status, error=e.error, profiled_steps=e.profiled_steps
        )
        out.append(f)
        if e.status != "ok":
            continue
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
        ctx_mid = e.context_tokens + len(dec) / 2 if dec else e.context_tokens
        if kv_per_token and weight_bytes:
            f.bytes_per_step = int(weight_bytes + kv_per_token * ctx_mid)
            if bw:
                f.bound_ms_per_token = f.bytes_per_step / (bw * 1e9) * 1e3
                f.attention_bound_ms_per_token = kv_per_token * ctx_mid / (bw * 1e9) * 1e3
        if e.trace:
            path = run_dir / e.trace
            if not path.exists():
                f.error = f"trace file {e.trace} is missing"
                continue
            trace = load_trace(path, partial=True)
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


def build_report(run_dir: Path, *, peak_bandwidth: float | None = None) -> ReportData:
    run_dir = Path(run_dir)
    m = read_manifest(run_dir)
    if not m.contexts:
        raise UserError(f"{run_dir}: the run holds no finished context yet; capture again")
    bw, bw_source = bandwidth.choose(m.device, peak_bandwidth)
    contexts, gaps = context_figures(run_dir, m, bw)
    ok = [c for c in contexts if c.status == "ok" and c.decode_ms_per_token is not None]
    xs = [float(c.context_tokens) for c in ok]
    fits: dict[str, LineFit] = {}
    total = fit_line(xs, [c.decode_ms_per_token or 0.0 for c in ok])
    if total:
        fits["total"] = total
    with_att = [c for c in ok if c.attention_ms_per_token is not None]
    att = fit_line([float(c.context_tokens) for c in with_att], [c.attention_ms_per_token or 0.0 for c in with_att])
    other = fit_line(
        [float(c.context_tokens) for c in with_att],
        [(c.decode_ms_per_token or 0.0) - (c.attention_ms_per_token or 0.0) for c in with_att],
    )
    if att:
        fits["attention"] = att
    if other:
        fits["other"] = other
    predictions: dict[str, float] = {}
    if total and xs:
        top = max(xs)
        for k in (2, 4):
            ms = total.at(top * k)
            if ms > 0:
                predictions[f"tokens_per_s@{int(top * k)}"] = 1000.0 / ms
    half = crossing(att, total) if att and total else None
    data = ReportData(
        run=str(run_dir),
        device=m.device,
        model=m.model,
        settings=m.settings,
        contexts=contexts,
        fits=fits,
        predictions=predictions,
        attention_half_at=half,
        bandwidth_gbps=bw,
        bandwidth_source=bw_source,
        findings=[],
        complete=m.complete,
        gaps=gaps,
    )
    data.findings = findings_for(data)
    return data


def to_json(d: ReportData) -> dict[str, Any]:
    def r(x: float | None, n: int = 4) -> float | None:
        return None if x is None else round(x, n)

    return {
        "schema": SCHEMA,
        "run": d.run,
        "device": {**d.device, "peak_bandwidth_gbps": d.bandwidth_gbps, "peak_bandwidth_source": d.bandwidth_source},
        "model": d.model,
        "complete": d.complete,
        "contexts": [
            {
                "context_tokens": c.context_tokens,
                "status": c.status,
                "error": c.error,
                "prefill_s": r(c.prefill_s, 6),
                "prefill_s_unsynced": r(c.prefill_s_unsynced, 6),
                "prefill_tokens_per_s": r(c.prefill_tokens_per_s, 2),
                "decode_ms_per_token": r(c.decode_ms_per_token),
                "tokens_per_s": r(c.tokens_per_s, 3),
                "profiled_tokens_per_s": r(c.profiled_tokens_per_s, 3),
                "attention_ms_per_token": r(c.attention_ms_per_token),
                "attention_share": r(c.attention_share),
                "categories_ms_per_token": {k: round(v, 4) for k, v in c.categories_ms_per_token.items()},
                "idle_share": r(c.idle_share),
                "profiler_overhead": r(c.profiler_overhead),
                "bound_ms_per_token": r(c.bound_ms_per_token, 6),
                "attention_bound_ms_per_token": r(c.attention_bound_ms_per_token, 6),
                "bytes_per_step": c.bytes_per_step,
            }
            for c in d.contexts
        ],
        "fit": {
            k: {
                "intercept_ms": round(f.intercept, 6),
                "slope_ms_per_1k_tokens": round(f.slope * 1000, 6),
                "r2": round(f.r2, 6),
                "points": f.n,
            }
            for k, f in d.fits.items()
        },
        "predictions": {k: round(v, 3) for k, v in d.predictions.items()},
        "attention_half_at_context": None if d.attention_half_at is None else round(d.attention_half_at),
        "findings": [{"kind": f.kind, "severity": f.severity, "message": f.message} for f in d.findings],
    }
