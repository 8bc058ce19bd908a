"""The report's "What would help": a run's basis for advice (``tracekit.advise``) from its report
facts. The fits and replicates are the report's own (``report.fit``, ``report.uncertainty``, the
capture's seeds), so the advice and the report cannot disagree."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tracekit import stats
from tracekit.advice import AdviceSet, Plan, advise
from tracekit.advice.measurement import DOUBTS
from tracekit.advice.model import Basis, Check, Line, Point, Reps
from tracekit.report.fit import fit_line, fit_replicates
from tracekit.report.model import Finding, ReportFacts
from tracekit.report.uncertainty import decode_reps
from tracekit.stats import prefill_seed


def line(xs: Sequence[float], ys: Sequence[float], reps: Reps | None) -> Line | None:
    """The least-squares line through the points, with the line through each replicate row."""
    f = fit_line(list(xs), list(ys))
    if f is None:
        return None
    a_r = s_r = None
    if reps is not None:
        a_r, s_r = fit_replicates(list(xs), reps)
    return Line(f.intercept, f.slope, f.n, f.r2, min(xs), max(xs), a_r, s_r)


def capture_command(run: Path, settings: dict[str, object]) -> str | None:
    """The capture that measured a run, as a command line (to vary one flag of it)."""
    if not settings.get("contexts"):
        return None
    words = ["tracekit", "capture"]
    for flag, key in (("--backend", "backend"), ("--preset", "preset"), ("--model", "model"), ("--attn", "attn")):
        if settings.get(key) not in (None, ""):
            words += [flag, str(settings[key])]
    contexts = settings["contexts"]
    words += ["--context", ",".join(str(c) for c in contexts) if isinstance(contexts, list) else str(contexts)]
    for flag, key in (("--tokens", "tokens"), ("--rounds", "rounds"), ("--device", "device"), ("--dtype", "dtype")):
        if settings.get(key) not in (None, "", "auto"):
            words += [flag, str(settings[key])]
    words += ["--out", str(run.parent), "--name", run.name]
    return shlex.join(words)


def _device_label(kind: str, name: str) -> str:
    return f"CPU ({name})" if kind == "cpu" else name or kind or "the device"


def from_report(d: ReportFacts, findings: Sequence[Finding]) -> Basis:
    # A step timed at no time at all is no measurement (every figure here divides by it).
    ok = [c for c in d.ok_contexts() if (c.decode_ms_per_token or 0.0) > 0]
    points = []
    for c in ok:
        points.append(
            Point(
                c.context_tokens, c.decode_ms_per_token or 0.0, decode_reps(c), c.decode_ms_per_token_ci95, c.prefill_s
            )
        )
    xs = [float(p.context) for p in points]
    reps = [p.reps for p in points]
    stacked = None if not reps or any(r is None for r in reps) else np.stack(reps, axis=1)  # type: ignore[arg-type]
    decode = line(xs, [p.ms for p in points], stacked)
    with_prefill = [c for c in ok if c.prefill_s]
    pre_reps = [
        stats.replicates([c.prefill_samples_s], "median", seed=prefill_seed(c.context_tokens)) for c in with_prefill
    ]
    prefill = line(
        [float(c.context_tokens) for c in with_prefill],
        [c.prefill_s or 0.0 for c in with_prefill],
        None if not pre_reps or any(r is None for r in pre_reps) else np.stack(pre_reps, axis=1),  # type: ignore[arg-type]
    )
    peak = None if d.roof is None or d.shape is None else d.roof.peak_flops(d.shape.dtype)
    run = Path(d.run)
    return Basis(
        source=f"run {d.run}",
        points=tuple(points),
        decode=decode,
        prefill=prefill,
        shape=d.shape,
        device=_device_label(d.device.kind, d.device.name),
        bandwidth_gbps=d.bandwidth_gbps,
        bandwidth_source=d.bandwidth_source,
        checks=tuple(Check(f.kind, f.severity, f.message) for f in findings if f.kind in DOUBTS),
        attn=d.model.attn,
        command=capture_command(run, d.settings),
        rounds=int(d.settings.get("rounds") or 0) or None,
        peak_tflops=None if peak is None else peak / 1e12,
        bandwidth_measured=d.roof is not None and d.roof.measured,
        max_context=d.model.max_context or None,
    )


def advice_for(facts: ReportFacts, findings: list[Finding]) -> AdviceSet | None:
    """The report's "What would help": tracekit's default plan (no target, no other device)."""
    if not facts.ok_contexts():
        return None
    return advise(from_report(facts, findings), Plan(), run=facts.run)
