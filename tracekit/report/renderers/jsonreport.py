"""The report as JSON (``tracekit.report/1``): every figure, for machines and ``--check``."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from tracekit.advice.document import to_json as advice_json
from tracekit.report.headline import headline
from tracekit.report.model import ContextFigures, ReportData, ReportFacts
from tracekit.report.renderers.base import Output
from tracekit.sanitize import finite
from tracekit.stats import Interval

EXTENSION = "json"
SCHEMA = "tracekit.report/1"


def _ci(iv: Interval | None, n: int = 4) -> list[float] | None:
    return None if iv is None else [round(iv[0], n), round(iv[1], n)]


def _headline(d: ReportData) -> dict[str, Any]:
    h = headline(d)
    return {
        "text": h.text,
        "lines": h.lines,
        "smallest_context": h.smallest_context,
        "largest_context": h.largest_context,
        **{k: None if v is None else round(v, 4) for k, v in h.figures.items()},
        **{f"{k}_ci95": _ci(v) for k, v in h.intervals.items()},
        "timer_honest": h.timer_honest,
        "machine_quiet": h.machine_quiet,
        "conclusive": h.conclusive,
        "categories_added_ms_per_token": [
            {"category": name, "added_ms_per_token": round(v, 4), "ci95": _ci(iv)} for name, v, iv in h.categories
        ],
    }


def _half(d: ReportFacts) -> int | None:
    """Where attention becomes half a step, where the fits may say so (within the extrapolation limit)."""
    x, limit = d.growth.attention_half_at, d.growth.extrapolation_limit
    return None if x is None or (limit is not None and x > limit) else round(x)


def _roof(d: ReportFacts) -> dict[str, Any]:
    """The device's limits the achieved figures are compared with (``tracekit.limits``)."""
    roof = d.roof
    if roof is None:
        return {"source": d.roof_source, "peak_bandwidth_tb_s": None, "peak_tflops": {}}
    return {
        "limits_name": roof.name,
        "key": roof.key,
        "source": d.roof_source,
        "peak_bandwidth_tb_s": roof.bandwidth_tb_s,
        "peak_tflops": dict(roof.tflops),
    }


def _limits(c: ContextFigures) -> dict[str, Any]:
    """A context's distance to the limit: attention, the weight GEMMs and the whole step."""
    out: dict[str, Any] = {}
    for prefix, a in (("attention_", c.attention), ("gemm_", c.gemm), ("step_", c.step)):
        if a is None:
            out.update({f"{prefix}{k}": None for k in ("bytes", "flops", "achieved_tb_s", "achieved_tflops", "intensity", "peak_share", "bound", "above_peak", "above_measured")})
        else:
            out.update(a.to_json(prefix))
    out["ceiling_tokens_per_s"] = None if c.ceiling_tokens_per_s is None else round(c.ceiling_tokens_per_s, 3)
    return out


def to_json(d: ReportData) -> dict[str, Any]:
    def r(x: float | None, n: int = 4) -> float | None:
        return None if x is None else round(x, n)

    facts = d.facts
    return {
        "schema": SCHEMA,
        "headline": _headline(d),
        "run": facts.run,
        "device": {
            **msgspec.to_builtins(facts.device),
            "peak_bandwidth_gbps": facts.bandwidth_gbps,
            "peak_bandwidth_source": facts.bandwidth_source,
            **_roof(facts),
        },
        "model_facts": None if facts.shape is None else facts.shape.to_json(),
        "model": msgspec.to_builtins(facts.model),
        "complete": facts.complete,
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
                "rounds": c.rounds,
                "decode_ms_per_token_ci95": _ci(c.decode_ms_per_token_ci95),
                "decode_ms_per_token_by_round": [round(x, 4) for x in c.decode_ms_by_round],
                "tokens_per_s_ci95": _ci(c.tokens_per_s_ci95, 3),
                "attention_ms_per_token_ci95": _ci(c.attention_ms_per_token_ci95),
                "attention_share_ci95": _ci(c.attention_share_ci95),
                "prefill_s_ci95": _ci(c.prefill_s_ci95, 6),
                "ttft_s": r(c.ttft_s, 6),
                "ttft_s_ci95": _ci(c.ttft_s_ci95, 6),
                "itl_ms_p50": r(c.itl_ms_p50),
                "itl_ms_p90": r(c.itl_ms_p90),
                "itl_ms_p99": r(c.itl_ms_p99),
                **_limits(c),
            }
            for c in facts.contexts
        ],
        "fit": {
            k: {
                "intercept_ms": round(f.intercept, 6),
                "slope_ms_per_1k_tokens": round(f.slope * 1000, 6),
                "r2": round(f.r2, 6),
                "points": f.n,
                "exact": f.exact,
                "slope_known": f.slope_known,
                "slope_ci95": None if f.slope_ci95 is None else [round(x * 1000, 6) for x in f.slope_ci95],
                "intercept_ci95": _ci(f.intercept_ci95, 6),
            }
            for k, f in facts.fits.items()
        },
        "predictions": {k: round(v, 3) for k, v in facts.growth.predictions.items()},
        "predictions_ci95": {k: _ci(v, 3) for k, v in facts.growth.prediction_ci95.items()},
        "attention_half_at_context": _half(facts),
        "extrapolation_limit_context": facts.growth.extrapolation_limit,
        "findings": [{"kind": f.kind, "severity": f.severity, "message": f.message} for f in d.findings],
        "advice": None if d.advice is None else advice_json(d.advice),
    }


def render(data: ReportData) -> Output:
    return Output(json.dumps(finite(to_json(data)), indent=2, allow_nan=False) + "\n")
