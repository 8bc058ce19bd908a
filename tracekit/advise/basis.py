"""What advice rests on, built from a run's report facts, or from model facts and speeds measured
elsewhere (``--measured``). Fits and their replicates are the report's own (``report.fit``,
``report.uncertainty``): the advice and the report cannot disagree."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tracekit import stats
from tracekit.advise.measurement import DOUBTS, OWN_TIMER
from tracekit.advise.model import Basis, Check, Line, Point, Reps
from tracekit.analysis.growth import fit as steps_fit
from tracekit.analysis.steps import StepTable
from tracekit.limits.devices import Device
from tracekit.limits.model import ModelShape
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
    ok = d.ok_contexts()
    points = []
    for c in ok:
        points.append(
            Point(
                c.context_tokens, c.decode_ms_per_token or 0.0, decode_reps(c), c.decode_ms_per_token_ci95, c.prefill_s
            )
        )
    xs = [float(p.context) for p in points]
    reps = [p.reps for p in points]
    decode = line(xs, [p.ms for p in points], None if any(r is None for r in reps) else np.stack(reps, axis=1))  # type: ignore[arg-type]
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
    )


def _tflops(on: Device | None, shape: ModelShape) -> float | None:
    peak = None if on is None else on.peak_flops_for(shape.dtype)
    return None if peak is None else peak / 1e12


def from_facts(shape: ModelShape, on: Device | None, measured: Sequence[tuple[int, float]], what: str) -> Basis:
    """No trace: the model's facts, the device the speeds were measured on, and speeds in tokens/s
    the user measured (``measured``: (context, tokens/s), ascending)."""
    points = tuple(Point(c, 1000.0 / tps) for c, tps in measured)
    decode = line([float(p.context) for p in points], [p.ms for p in points], None) if len(points) >= 2 else None
    return Basis(
        source="speeds given with --measured" if points else f"model facts ({what})",
        points=points,
        decode=decode,
        prefill=None,
        shape=shape,
        device=on.name if on is not None else "",
        bandwidth_gbps=None if on is None else on.peak_bandwidth_tb_s * 1000.0,
        bandwidth_source="" if on is None else on.source,
        checks=(OWN_TIMER,) if points else (),
        peak_tflops=None
        if on is None or on.peak_flops_for(shape.dtype) is None
        else on.peak_flops_for(shape.dtype) / 1e12,  # type: ignore[operator]
    )


def _step_line(x: NDArray[np.float64], y: NDArray[np.float64], what: str) -> Line | None:
    """The step fit (``analysis.growth.fit``: least squares, bootstrap over steps) as a Line."""
    f = steps_fit(x, y, seed=stats.seed_for("advise", what))
    if f is None:
        return None
    r = f.replicates  # a draw of one x has no slope (NaN): every interval drops it
    return Line(
        f.intercept, f.slope, f.n, f.r2, f.x_min, f.x_max, r[:, 1], r[:, 0],
        over=f"{what} steps", drawn="a bootstrap over the steps",
    )  # fmt: skip


def from_steps(
    steps: StepTable, shape: ModelShape | None, device: Device | None, what: str, checks: Sequence[Check] = ()
) -> Basis:
    """Engine traces: each decode step with a known KV length is a point (its device-busy time:
    attention and the rest, idle gaps left out), the context per sequence is its KV tokens over
    its requests; the decode line is the step fit over them (bootstrap over steps)."""
    decode = (steps.phase == "decode") & np.isfinite(steps.kv_tokens)
    req = np.where(np.isfinite(steps.requests), steps.requests, 1.0)[decode]
    busy_ms = (steps.attention_us + steps.other_us)[decode] / 1000.0
    per_seq = steps.kv_tokens[decode] / np.maximum(req, 1.0)
    batch = int(np.median(req)) if len(req) else 1
    by_ctx: dict[int, list[float]] = {}
    for c, ms in zip(np.rint(per_seq).astype(int).tolist(), busy_ms.tolist()):
        by_ctx.setdefault(c, []).append(ms)
    points = tuple(Point(c, float(np.median(v))) for c, v in sorted(by_ctx.items()) if c > 0)
    decode_line = _step_line(per_seq, busy_ms, "decode")
    # A prefill step of one sequence: its query tokens are the prompt; its busy time, in seconds.
    pre = (steps.phase == "prefill") & np.isfinite(steps.query_tokens)
    pre &= np.where(np.isfinite(steps.requests), steps.requests, 1.0) == 1
    prefill_line = _step_line(steps.query_tokens[pre], (steps.attention_us + steps.other_us)[pre] / 1e6, "prefill")
    return Basis(
        source=what,
        points=points,
        decode=decode_line,
        prefill=prefill_line,
        shape=shape,
        device=device.name if device is not None else "",
        bandwidth_gbps=None if device is None else device.peak_bandwidth_tb_s * 1000.0,
        bandwidth_source="" if device is None else device.source,
        checks=tuple(checks),
        batch=max(1, batch),
        peak_tflops=None if shape is None else _tflops(device, shape),
    )
