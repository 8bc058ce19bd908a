"""What the bytes a decode step reads allow: the bandwidth ceiling at each context, on the device
that measured and on another one, at the precision measured and at a lower one; and how much of
the measured slowdown the growth of those bytes explains.

A decode step reads every weight once (the embedding table aside: one row a token) and the KV cache
of its context: bytes = weights + KV(context), as ``limits.roofline.decode_ceiling_tokens_per_s``.
At a device's peak bandwidth that takes bytes / bandwidth, the least a step can take (the ceiling
on tokens/s is its inverse). A prediction carries over the measured efficiency, the share of peak
bandwidth a step reached where it was measured: step = bound / efficiency. That is an assumption,
said with every prediction: a step limited by compute, launches or the attention kernel does not
speed up with bandwidth.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tracekit.advice.common import ci, gain_reps, interval, mb, pct, ratio_reps
from tracekit.advice.model import Advice, Basis, Projection, Reps
from tracekit.limits.devices import Device
from tracekit.limits.model import ModelShape
from tracekit.stats import Interval

LAUNCH_FLOOR_MS = 1.0  # below this a GPU decode step is usually bound by kernel launches


def step_ms(b: Basis, context: int) -> tuple[float, Reps | None, bool] | None:
    """The decode ms per token at ``context``: measured there, else from the fit (the last item
    says whether the fit leaves its measured range)."""
    for p in b.points:
        if p.context == context:
            return p.ms, p.reps, False
    if b.decode is None:
        return None
    line = b.decode
    return line.at(context), line.reps_at(context), not (line.lo <= context <= line.hi)


def per_second(ms: float, reps: Reps | None, batch: int = 1) -> tuple[float | None, Interval | None]:
    """Tokens/s of a step of ``ms`` (``batch`` tokens a step), with the interval of its replicates."""
    if ms <= 0:
        return None, None
    k = 1000.0 * batch
    return k / ms, interval(ratio_reps(np.full_like(reps, k), reps) if reps is not None else None)


def step_bytes(b: Basis, shape: ModelShape, context: int) -> tuple[float, float]:
    """Weights and KV bytes a step reads: every sequence of the batch reads its own cache."""
    return shape.step_weight_bytes(), b.batch * shape.kv_bytes(context)


def contexts(b: Basis, extra: tuple[int, ...]) -> list[int]:
    return sorted({p.context for p in b.points} | set(extra))


def _row(b: Basis, shape: ModelShape, c: int, device: str, variant: str, bw: float, scale: float | None) -> Projection:
    """One row; ``scale`` turns the measured step into the predicted one (None: measured as is)."""
    w, kv = step_bytes(b, shape, c)
    row = Projection(c, device, variant, w, kv, bw, batch=b.batch)
    got = step_ms(b, c) if b.measured else None
    if got is None:
        return row
    ms, reps, extrapolated = got
    measured_here = any(p.context == c for p in b.points)
    if scale is None:
        tps, tps_ci = per_second(ms, reps, b.batch)
        if measured_here:
            return replace(row, measured_tokens_per_s=tps, measured_tokens_per_s_ci95=tps_ci)
        return replace(row, predicted_tokens_per_s=tps, predicted_tokens_per_s_ci95=tps_ci, extrapolated=extrapolated)
    pred, pred_ci = per_second(ms * scale, None if reps is None else reps * scale, b.batch)
    if pred is not None and pred > row.ceiling_tokens_per_s:
        # The step beat its own bound where it was measured (above 100% of peak): there is no share of
        # peak to carry over, so no prediction (the measurement check says why).
        pred, pred_ci = None, None
    out = replace(row, predicted_tokens_per_s=pred, predicted_tokens_per_s_ci95=pred_ci, extrapolated=extrapolated)
    if measured_here and device == b.device:
        tps, tps_ci = per_second(ms, reps, b.batch)
        out = replace(out, measured_tokens_per_s=tps, measured_tokens_per_s_ci95=tps_ci)
    return out


def measured_rows(b: Basis, extra: tuple[int, ...]) -> list[Projection]:
    """The device that measured, at the precision measured."""
    if b.shape is None or not b.bandwidth_gbps:
        return []
    label = "as measured" if b.measured else "as given"
    return [_row(b, b.shape, c, b.device, label, b.bandwidth_gbps, None) for c in contexts(b, extra)]


def device_rows(b: Basis, on: Device, extra: tuple[int, ...]) -> list[Projection]:
    """Another device: its ceiling, and the measured step scaled by the ratio of peak bandwidths
    (the same bytes at the same share of peak)."""
    if b.shape is None:
        return []
    bw = on.peak_bandwidth_tb_s * 1000.0
    scale = None if not b.bandwidth_gbps else b.bandwidth_gbps / bw
    rows = []
    for c in contexts(b, extra):
        r = _row(b, b.shape, c, on.name, f"on {on.key}", bw, scale if scale is not None else 1.0)
        if scale is None:
            r = replace(r, predicted_tokens_per_s=None, predicted_tokens_per_s_ci95=None)
        rows.append(r)
    return rows


def reference(b: Basis) -> int | None:
    """The context advice compares at: the largest measured one."""
    return b.points[-1].context if b.points else None


def above_ceiling(b: Basis) -> list[tuple[int, float, float]]:
    """The measured contexts whose speed is above the bandwidth ceiling: (context, measured tokens/s,
    ceiling tokens/s). None against a measured copy bandwidth: a floor, not a peak, may be beaten."""
    if b.shape is None or not b.bandwidth_gbps or b.bandwidth_measured:
        return []
    out = []
    for p in b.points:
        ceiling = b.batch * b.bandwidth_gbps * 1e9 / sum(step_bytes(b, b.shape, p.context))
        if p.ms > 0 and 1000.0 * b.batch / p.ms > ceiling:
            out.append((p.context, 1000.0 * b.batch / p.ms, ceiling))
    return out


def efficiency(b: Basis, c: int) -> tuple[float, Interval | None] | None:
    """The share of peak bandwidth a measured step reached at ``c`` (bound / measured)."""
    got = step_ms(b, c)
    if got is None or b.shape is None or not b.bandwidth_gbps:
        return None
    ms, reps, _ = got
    bound = sum(step_bytes(b, b.shape, c)) / (b.bandwidth_gbps * 1e9) * 1e3
    return bound / ms, interval(ratio_reps(np.full_like(reps, bound), reps) if reps is not None else None)


def device_advice(b: Basis, on: Device, rows: list[Projection]) -> Advice | None:
    c = reference(b)
    row = next((r for r in rows if r.context == c), rows[-1] if rows else None)
    if row is None:
        return None
    bw = on.peak_bandwidth_tb_s
    head = (
        f"On {on.name} ({bw:g} TB/s peak) a decode step at context {row.context:,} reads "
        f"{mb(row.weight_bytes + row.kv_bytes)} and cannot take less than {row.bound_ms:.3g} ms: at most "
        f"{row.ceiling_tokens_per_s:,.1f} tokens/s."
    )
    rests = [f"{on.name}'s peak bandwidth, {on.source}", _bytes_rest(b)]
    eff = efficiency(b, row.context)
    measured = next((p for p in b.points if p.context == row.context), None)
    if eff is None or measured is None or row.predicted_tokens_per_s is None or not b.bandwidth_gbps:
        return Advice("device", head, None, None, tuple(rests), ("the step reads each weight once per token",))
    measured_tps = 1000.0 * b.batch / measured.ms
    gain = row.predicted_tokens_per_s / measured_tps - 1.0
    claim = (
        head + f" At the share of peak bandwidth measured here ({100 * eff[0]:.0f}%{ci(eff[1], '{:.0f}', 100)} of "
        f"{b.bandwidth_gbps:,.1f} GB/s at that context) it would decode at {row.predicted_tokens_per_s:,.1f}"
        f"{ci(row.predicted_tokens_per_s_ci95, '{:,.1f}')} tokens/s, against {measured_tps:,.1f} measured on "
        f"{b.device or 'this device'} ({pct(gain)})."
    )
    rests.append(f"the measured step at context {row.context:,} ({measured.ms:.3g} ms, {b.source})")
    assumptions = [
        f"the step reaches the same share of peak bandwidth on {on.key} as measured here (an assumption: a step "
        "limited by compute, kernel launches or the attention kernel does not scale with bandwidth)",
        f"the peak bandwidth measured here is {b.bandwidth_gbps:,.1f} GB/s ({b.bandwidth_source})",
    ]
    predicted_step = 1000.0 * b.batch / row.predicted_tokens_per_s
    if predicted_step < LAUNCH_FLOOR_MS:
        assumptions.append(
            f"a step of {predicted_step:.3g} ms is not limited by kernel launches (on a GPU each "
            "takes a few µs, and a small model's step launches dozens: the prediction is then an upper bound)"
        )
    return Advice(
        "device",
        claim,
        gain,
        None,
        tuple(rests),
        tuple(assumptions),
        gain_basis=f"tokens/s at context {row.context:,} on {on.key} against measured; the ratio of two peak "
        "bandwidths, so no interval",
        figures={
            "context": row.context,
            "ceiling_tokens_per_s": row.ceiling_tokens_per_s,
            "predicted_tokens_per_s": row.predicted_tokens_per_s,
            "measured_tokens_per_s": measured_tps,
            "efficiency": eff[0],
        },
        figures_ci95={"predicted_tokens_per_s": row.predicted_tokens_per_s_ci95, "efficiency": eff[1]},
    )


def _bytes_rest(b: Basis) -> str:
    s = b.shape
    if s is None:
        return "the model's bytes are unknown"
    by_source: dict[str, list[str]] = {}
    for fact, where in s.source.items():
        by_source.setdefault(where, []).append(fact)
    facts = "; ".join(f"{', '.join(ks)} from {where}" for where, ks in by_source.items()) or "the model facts"
    return (
        f"weights read per step {mb(s.step_weight_bytes())} at {s.weight_bits:g} bits (the embedding table aside) "
        f"and a KV cache of {s.kv_bytes_per_token() / 1024:,.1f} KiB per token at {s.kv_bits:g} bits ({facts})"
    )


def precision_variants(shape: ModelShape, kv_to: float | None, weight_to: float | None) -> list[tuple[str, ModelShape]]:
    """The precisions to project: the KV cache and the weights at ``kv_to`` / ``weight_to`` bits,
    or at half their bits where not given (fp16 -> fp8/int8; 8-bit -> 4-bit), never below 4."""
    out = []
    kv = kv_to if kv_to is not None else (shape.kv_bits / 2 if shape.kv_bits / 2 >= 4 else None)
    if kv is not None and kv != shape.kv_bits:
        out.append((f"KV cache at {kv:g} bits", replace(shape, kv_bits=kv)))
    w = weight_to if weight_to is not None else (shape.weight_bits / 2 if shape.weight_bits / 2 >= 4 else None)
    if w is not None and w != shape.weight_bits:
        out.append((f"weights at {w:g} bits", replace(shape, weight_bits=w)))
    return out


def precision(
    b: Basis, kv_to: float | None, weight_to: float | None, extra: tuple[int, ...]
) -> tuple[list[Advice], list[Projection]]:
    """Each lower precision: the bound and the predicted step at each context (the measured step
    scaled by the ratio of bytes: the same share of peak), and the advice at the reference context."""
    if b.shape is None:
        return [], []
    bw = b.bandwidth_gbps
    advice: list[Advice] = []
    rows: list[Projection] = []
    ref = reference(b) or (max(extra) if extra else None)
    for label, new in precision_variants(b.shape, kv_to, weight_to):
        for c in contexts(b, extra):
            ratio = sum(step_bytes(b, new, c)) / sum(step_bytes(b, b.shape, c))
            if bw:
                rows.append(_row(b, new, c, b.device, label, bw, ratio if b.measured else None))
        if ref is None:
            continue
        old_bytes = sum(step_bytes(b, b.shape, ref))
        new_bytes = sum(step_bytes(b, new, ref))
        gain = old_bytes / new_bytes - 1.0
        what = label.split(" at ")[0]
        eff = efficiency(b, ref) if b.measured else None
        beyond = eff is not None and eff[0] > 1.0  # the measured step beat its bound: no share to keep
        claim = (
            f"{what[:1].upper() + what[1:]} at {label.split(' at ')[1]} instead of "
            f"{(b.shape.kv_bits if what.startswith('KV') else b.shape.weight_bits):g}: a step at context {ref:,} "
            f"reads {mb(new_bytes)} instead of {mb(old_bytes)}, "
            + (
                f"a ceiling {pct(gain)} higher; no projection: the speed measured there is above the ceiling "
                "(see the measurement check)."
                if beyond
                else f"{pct(gain)} tokens/s if the step keeps its share of peak bandwidth (a projection)."
                if b.measured
                else f"a ceiling {pct(gain)} higher (nothing measured: the bound alone)."
            )
        )
        if beyond:
            gain_basis = f"the ceiling at context {ref:,}, the ratio of bytes read (no projection)"
        else:
            gain_basis = f"tokens/s at context {ref:,}, the ratio of bytes read"
        figures: dict[str, float | int | str | None] = {
            "context": ref,
            "bytes_before": old_bytes,
            "bytes_after": new_bytes,
        }
        figures_ci: dict[str, Interval | None] = {}
        got = step_ms(b, ref) if b.measured and not beyond else None
        if got is not None and bw:
            ms, reps, _ = got
            saved = (old_bytes - new_bytes) / (bw * 1e9) * 1e3
            floor = ms / (ms - saved) - 1.0 if ms > saved else None
            floor_ci = interval(gain_reps(reps, None if reps is None else reps - saved))
            if floor is not None:
                claim += (
                    f" If only the bytes' own time at full bandwidth ({saved:.3g} ms) goes, {pct(floor)}"
                    f"{ci(floor_ci, '{:+.0f}%', 100)}."
                )
                figures["gain_if_only_bytes_time"] = floor
                figures_ci["gain_if_only_bytes_time"] = floor_ci
        advice.append(
            Advice(
                "precision",
                claim,
                gain,
                None,
                (_bytes_rest(b), f"the measured step at context {ref:,}" if got is not None else "the bound alone"),
                (
                    ()
                    if beyond
                    else (
                        "the step keeps its measured share of peak bandwidth (an assumption: a projection, not a "
                        "measurement, so the gain has no interval)",
                    )
                )
                + ("the lower precision keeps the model's output good enough (not measured here)",),
                gain_basis=gain_basis,
                figures=figures,
                figures_ci95=figures_ci,
            )
        )
    return advice, rows


def bound_explains(b: Basis) -> tuple[float | None, Interval | None, float | None, float | None]:
    """The share of the measured slowdown (first to last measured context, ms per token) that the
    growth of the KV cache's bytes at peak bandwidth explains; also both differences in ms."""
    if len(b.points) < 2 or b.shape is None or not b.bandwidth_gbps:
        return None, None, None, None
    a, z = b.points[0], b.points[-1]
    added = z.ms - a.ms
    bound = b.batch * (b.shape.kv_bytes(z.context) - b.shape.kv_bytes(a.context)) / (b.bandwidth_gbps * 1e9) * 1e3
    share = bound / added if added > 0 else None
    reps = None if a.reps is None or z.reps is None else ratio_reps(np.full_like(a.reps, bound), z.reps - a.reps)
    return share, interval(reps), bound, added
