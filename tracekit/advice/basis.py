"""What advice rests on, built from engine traces' steps (``analysis.steps``), or from model facts
and speeds measured elsewhere (``--measured``). A run folder's basis is the report's
(``report.advice.from_report``): the advice and the report cannot disagree."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from tracekit import stats
from tracekit.advice.measurement import OWN_TIMER
from tracekit.advice.model import Basis, Line, Point
from tracekit.analysis.growth import fit as steps_fit
from tracekit.analysis.steps import StepTable
from tracekit.limits.devices import Device
from tracekit.limits.model import ModelShape
from tracekit.limits.roofline import Roof


def _measured_line(points: tuple[Point, ...]) -> Line | None:
    """The least-squares line through speeds given without repeats (no replicates, no interval)."""
    if len({p.context for p in points}) < 2:
        return None
    xs = [float(p.context) for p in points]
    fitted = stats.line(xs, [p.ms for p in points])
    if fitted is None:
        return None
    intercept, slope, r2 = fitted
    return Line(intercept, slope, len(points), r2, min(xs), max(xs), over="speeds you measured")


def _tera(flops: float | None) -> float | None:
    """A dense peak in TFLOP/s (the device tables give FLOP/s; None where they do not know it)."""
    return None if flops is None else flops / 1e12


def from_facts(
    shape: ModelShape,
    on: Device | None,
    measured: Sequence[tuple[int, float]],
    what: str,
) -> Basis:
    """No trace: the model's facts (its longest context where they say it), the device the speeds were
    measured on, and speeds in tokens/s the user measured (``measured``: (context, tokens/s),
    ascending)."""
    points = tuple(Point(c, 1000.0 / tps) for c, tps in measured)
    decode = _measured_line(points)
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
        peak_tflops=None if on is None else _tera(on.peak_flops_for(shape.dtype)),
        max_context=shape.max_context,
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
    steps: StepTable, shape: ModelShape | None, roof: Roof | None, what: str, roof_source: str = ""
) -> Basis:
    """Engine traces: each decode step with a known KV length is a point (its device-busy time:
    attention and the rest, idle gaps left out) at its context per sequence, KV tokens over
    requests; the decode line is the step fit over them (bootstrap over steps). The steps of the
    most common batch size are used (a sequence gains one token a step whatever the batch, so the
    budget and the reset plan hold per sequence); the prefill line fits prefill steps' time against
    their query tokens (every sequence's prompt)."""
    req_all = np.where(np.isfinite(steps.requests), steps.requests, 1.0)
    decode = (steps.phase == "decode") & np.isfinite(steps.kv_tokens)
    sizes, counts = np.unique(req_all[decode], return_counts=True)
    batch = int(sizes[np.argmax(counts)]) if len(sizes) else 1
    notes = []
    if len(sizes) > 1:
        notes.append(f"{int(counts.sum() - counts.max())} decode steps of other batch sizes than {batch} are left out")
    decode &= req_all == batch
    busy_ms = (steps.attention_us + steps.other_us)[decode] / 1000.0
    per_seq = steps.kv_tokens[decode] / max(batch, 1)
    by_ctx: dict[int, list[float]] = {}
    for c, ms in zip(np.rint(per_seq).astype(int).tolist(), busy_ms.tolist()):
        by_ctx.setdefault(c, []).append(ms)
    medians = ((c, float(np.median(v))) for c, v in sorted(by_ctx.items()) if c > 0)
    points = tuple(Point(c, ms) for c, ms in medians if ms > 0)  # a step of no device time is no measurement
    decode_line = _step_line(per_seq, busy_ms, "decode")
    pre = (steps.phase == "prefill") & np.isfinite(steps.query_tokens) & (req_all == batch)
    prefill_line = _step_line(steps.query_tokens[pre], (steps.attention_us + steps.other_us)[pre] / 1e6, "prefill")
    return Basis(
        source=what,
        points=points,
        decode=decode_line,
        prefill=prefill_line,
        shape=shape,
        device=roof.name if roof is not None else "",
        bandwidth_gbps=None if roof is None else roof.bandwidth_tb_s * 1000.0,
        bandwidth_source=(roof_source or roof.source) if roof is not None else "",
        batch=max(1, batch),
        peak_tflops=None if shape is None or roof is None else _tera(roof.peak_flops(shape.dtype)),
        notes=tuple(notes),
        bandwidth_measured=roof is not None and roof.measured,
        max_context=None if shape is None else shape.max_context,
    )
