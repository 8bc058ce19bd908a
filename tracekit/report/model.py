"""The report's data: plain dataclasses, computed once (``report.data.build_report``) and read by
every renderer. Findings are computed from the facts before ``ReportData`` exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracekit.advice.model import AdviceSet
from tracekit.analysis.timer_gaps import HostDeviceGap
from tracekit.limits.model import ModelShape
from tracekit.limits.roofline import Achieved, Roof
from tracekit.manifest import DeviceFacts, ModelFacts
from tracekit.report.fit import LineFit
from tracekit.stats import Interval


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
    # How far from the hardware limit (``tracekit.limits``): attention, the weight GEMMs and the whole
    # decode step against the device's roof, and the ceiling the bandwidth puts on tokens/s.
    attention: Achieved | None = None
    gemm: Achieved | None = None
    step: Achieved | None = None
    ceiling_tokens_per_s: float | None = None
    # Intervals (95 %, two-stage bootstrap over rounds then steps: ``tracekit.stats``).
    decode_ms_per_token_ci95: Interval | None = None
    tokens_per_s_ci95: Interval | None = None
    attention_share_ci95: Interval | None = None
    attention_ms_per_token_ci95: Interval | None = None
    prefill_s_ci95: Interval | None = None
    ttft_s: float | None = None
    ttft_s_ci95: Interval | None = None
    itl_ms_p50: float | None = None
    itl_ms_p90: float | None = None
    itl_ms_p99: float | None = None
    rounds: int = 0
    decode_ms_by_round: list[float] = field(default_factory=list)  # each round's median step
    # The samples the intervals come from: decode steps (ms) and profiled steps' attention shares,
    # one list per round; and their bootstrap replicates, drawn by ``report.uncertainty``.
    decode_samples_ms: list[list[float]] = field(default_factory=list)
    prefill_samples_s: list[float] = field(default_factory=list)  # each timed prefill (synchronized)
    attention_share_samples: list[list[float]] = field(default_factory=list)
    # Each category's share of the profiled steps, per round (attention's is attention_share_samples).
    category_share_samples: dict[str, list[list[float]]] = field(default_factory=dict)
    decode_reps: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)
    share_reps: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)


@dataclass
class Growth:
    """How decode cost grows with context: line fits, predictions, where attention is half a step."""

    fits: dict[str, LineFit] = field(default_factory=dict)
    predictions: dict[str, float] = field(default_factory=dict)
    prediction_ci95: dict[str, Interval] = field(default_factory=dict)
    attention_half_at: float | None = None
    # How far the fits are trusted: up to this many times the largest measured context (and never
    # past the model's maximum); predictions and the crossing beyond it are not given.
    measured_max: int | None = None
    extrapolation_limit: int | None = None
    # Why a prediction or the crossing is not given ("" when it is)
    withheld: str = ""


@dataclass
class Finding:
    kind: str
    severity: str  # "info" | "warning" | "error"
    message: str


@dataclass
class ReportFacts:
    """Everything measured or derived for a run, before any judgement on it."""

    run: str
    device: DeviceFacts
    model: ModelFacts
    settings: dict[str, Any]
    contexts: list[ContextFigures]
    growth: Growth
    bandwidth_gbps: float | None
    bandwidth_source: str
    complete: bool
    gaps: list[HostDeviceGap] = field(default_factory=list)
    roof: Roof | None = None  # the device's limits the achieved figures are compared with
    roof_source: str = ""
    shape: ModelShape | None = None  # the model facts bytes and FLOPs come from (each with its source)

    def ok_contexts(self) -> list[ContextFigures]:
        return [c for c in self.contexts if c.status == "ok" and c.decode_ms_per_token is not None]

    @property
    def fits(self) -> dict[str, LineFit]:
        return self.growth.fits


@dataclass
class ReportData:
    """The facts and the findings drawn from them: what renderers show."""

    facts: ReportFacts
    findings: list[Finding] = field(default_factory=list)
    advice: AdviceSet | None = None  # "What would help" (``tracekit.advise``)
