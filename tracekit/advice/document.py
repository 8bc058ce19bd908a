"""Advice as JSON (``tracekit.advice/1``; schema in ``tracekit/schemas/advice.schema.json``)."""

from __future__ import annotations

from typing import Any

from tracekit.advice.model import AdviceSet, Projection
from tracekit.sanitize import finite
from tracekit.stats import Interval

SCHEMA = "tracekit.advice/1"


def _r(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(x, n)


def _ci(iv: Interval | None, n: int = 4) -> list[float | None] | None:
    return None if iv is None else [_r(iv[0], n), _r(iv[1], n)]


def _row(p: Projection) -> dict[str, Any]:
    return {
        "context": p.context,
        "device": p.device,
        "variant": p.variant,
        "weight_bytes": round(p.weight_bytes),
        "kv_bytes": round(p.kv_bytes),
        "peak_bandwidth_gb_s": _r(p.bandwidth_gbps, 3),
        "bound_ms_per_token": _r(p.bound_ms, 6),
        "ceiling_tokens_per_s": _r(p.ceiling_tokens_per_s, 3),
        "measured_tokens_per_s": _r(p.measured_tokens_per_s, 3),
        "measured_tokens_per_s_ci95": _ci(p.measured_tokens_per_s_ci95, 3),
        "predicted_tokens_per_s": _r(p.predicted_tokens_per_s, 3),
        "predicted_tokens_per_s_ci95": _ci(p.predicted_tokens_per_s_ci95, 3),
        "extrapolated": p.extrapolated,
    }


def to_json(a: AdviceSet) -> dict[str, Any]:
    doc = {
        "schema": SCHEMA,
        "source": a.source,
        "advice": [
            {
                "kind": x.kind,
                "severity": x.severity,
                "claim": x.claim,
                "predicted_gain": _r(x.predicted_gain, 6),
                "predicted_gain_ci95": _ci(x.predicted_gain_ci95, 6),
                "gain_basis": x.gain_basis,
                "rests_on": list(x.rests_on),
                "assumptions": list(x.assumptions),
                "figures": {k: _r(v, 6) if isinstance(v, float) else v for k, v in x.figures.items()},
                "figures_ci95": {k: _ci(v, 6) for k, v in x.figures_ci95.items()},
            }
            for x in a.advice
        ],
        "projection": [_row(p) for p in a.projection],
        "bound_explains": _r(a.bound_explains, 6),
        "bound_explains_ci95": _ci(a.bound_explains_ci95, 6),
        "notes": list(a.notes),
    }
    return finite(doc)  # type: ignore[no-any-return]
