"""Bytes and FLOPs of attention and GEMMs, what a measured time makes of them (achieved TB/s and
TFLOP/s, share of the roof, bound class by the ridge point), and the ceiling on decode tokens/s.

The roof is the device's peak DRAM bandwidth and dense peak FLOP/s for the dtype the work computes
in (``Roof``): from the device table, from ``--peak-bandwidth`` / ``--peak-flops``, or, on a CPU,
the bandwidth capture measured. Pure arithmetic: no trace or torch here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tracekit.errors import UserError
from tracekit.limits.devices import Device, device_from_trace_name, find_device
from tracekit.limits.model import ModelShape


@dataclass(frozen=True)
class Roof:
    """The limits one device puts on work: DRAM bandwidth (TB/s) and dense FLOP/s by dtype."""

    name: str
    source: str
    bandwidth_tb_s: float
    tflops: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    key: str = ""  # the device table's key, "" for a roof given by flags or measured
    measured: bool = False  # the bandwidth capture measured on this machine (a CPU run)

    @classmethod
    def of(cls, device: Device) -> Roof:
        return cls(device.name, device.source, device.peak_bandwidth_tb_s, device.peak_tflops, device.key)

    def peak_flops(self, dtype: str) -> float | None:
        """Dense peak FLOP/s for ``dtype`` (bf16 and fp16 stand in for each other: same units)."""
        tf = self.tflops.get(dtype)
        if tf is None and dtype in ("bf16", "fp16"):
            tf = self.tflops.get("fp16" if dtype == "bf16" else "bf16")
        if tf is None and "any" in self.tflops:
            tf = self.tflops["any"]
        return None if tf is None else tf * 1e12

    def ridge(self, dtype: str) -> float | None:
        """The intensity (FLOP/byte) where the roof turns from bandwidth to compute."""
        flops = self.peak_flops(dtype)
        return None if flops is None else flops / (self.bandwidth_tb_s * 1e12)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "source": self.source,
            "peak_bandwidth_tb_s": self.bandwidth_tb_s,
            "peak_tflops": dict(self.tflops),
        }


def choose_roof(
    *,
    trace_device: str = "",
    memory_bytes: int | None = None,
    device: str | None = None,
    peak_bandwidth_gbps: float | None = None,
    peak_tflops: float | None = None,
    measured_gbps: float | None = None,
) -> tuple[Roof | None, str]:
    """The roof to compare with, and a sentence on where it came from. ``--device`` picks a row
    (or overrides the trace's); ``--peak-bandwidth`` (GB/s) and ``--peak-flops`` (TFLOP/s, every
    dtype) replace those figures; else the trace's device name; else, on a CPU run, the bandwidth
    capture measured. None where nothing says: the caller names the flags."""
    for flag, value in (("--peak-bandwidth", peak_bandwidth_gbps), ("--peak-flops", peak_tflops)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{flag} {value:g}: give a positive number ({'GB/s' if 'band' in flag else 'TFLOP/s'})")
    base: Device | None = None
    how = ""
    if device is not None:  # "" is a mistake to report, not a request for the trace's device
        base = find_device(device)
        how = f"--device {device}"
    elif trace_device:
        base = device_from_trace_name(trace_device, memory_bytes=memory_bytes)
        how = f"the trace's device name {trace_device!r}"
    if peak_bandwidth_gbps is not None:
        flops = (
            MappingProxyType({"any": peak_tflops})
            if peak_tflops
            else (base.peak_tflops if base else MappingProxyType({}))
        )
        name = base.name if base else (trace_device or "the device")
        src = f"--peak-bandwidth {peak_bandwidth_gbps:g} GB/s" + (
            f", --peak-flops {peak_tflops:g} TFLOP/s"
            if peak_tflops
            else (f", FLOP/s from {base.source}" if base else "")
        )
        return Roof(name, src, peak_bandwidth_gbps / 1000.0, flops, base.key if base else ""), src
    if base is not None:
        roof = Roof.of(base)
        if peak_tflops:
            roof = Roof(
                roof.name,
                f"{roof.source}; --peak-flops {peak_tflops:g} TFLOP/s",
                roof.bandwidth_tb_s,
                MappingProxyType({"any": peak_tflops}),
                roof.key,
            )
        return roof, f"{base.name} ({how}): {base.source}"
    if measured_gbps:
        src = "bandwidth measured during capture (best of 3 device copies of 256 MiB)"
        flops = MappingProxyType({"any": peak_tflops}) if peak_tflops else MappingProxyType({})
        return Roof(trace_device or "this machine", src, measured_gbps / 1000.0, flops, measured=True), src
    if trace_device:
        return (
            None,
            f"{trace_device!r} is not in the device table: pass --device NAME (see 'tracekit devices') or --peak-bandwidth GBPS",
        )
    return None, "the device is unknown: pass --device NAME (see 'tracekit devices') or --peak-bandwidth GBPS"


@dataclass(frozen=True)
class Work:
    """What a piece of work must move and compute, at the least."""

    bytes: float
    flops: float

    @property
    def intensity(self) -> float | None:
        return self.flops / self.bytes if self.bytes > 0 else None

    def __add__(self, other: Work) -> Work:
        return Work(self.bytes + other.bytes, self.flops + other.flops)


def qk_pairs(
    query_tokens: int, kv_tokens: int, *, sum_q_kv: float | None = None, sum_q_sq: float | None = None
) -> float:
    """Query-key pairs attention scores: Σ qᵢ·kᵢ less the causal half within each chunk
    (Σ qᵢ(qᵢ-1)/2), where kᵢ counts the chunk's own tokens. Without the sums (vLLM's
    ``sqsk``/``sqsq``), every query sees every KV token of its request: exact for decode (qᵢ = 1),
    where it is the KV tokens."""
    if sum_q_kv is None:
        return float(kv_tokens) if query_tokens else 0.0
    causal = 0.0 if sum_q_sq is None else (sum_q_sq - query_tokens) / 2
    return max(0.0, sum_q_kv - causal)


def attention_work(
    shape: ModelShape,
    *,
    query_tokens: int,
    kv_tokens: int,
    requests: int = 1,
    pairs: float | None = None,
) -> Work:
    """Attention of one step over every layer. Bytes: the K and V of ``kv_tokens`` (summed over
    requests; a sliding-window layer reads at most its window per request) plus Q read and O
    written. FLOPs: QKᵀ and PV, 2·head_dim each per head and query-key pair."""
    elem = shape.kv_bits / 8
    per_layer_token = 2 * shape.kv_heads * shape.head_dim * elem
    full = shape.layers - shape.sliding_layers
    window_tokens = (
        kv_tokens if shape.sliding_window is None else min(kv_tokens, shape.sliding_window * max(1, requests))
    )
    kv = per_layer_token * (full * kv_tokens + shape.sliding_layers * window_tokens)
    act = 4 if shape.dtype == "fp32" else 2  # activations: fp32 models keep them in fp32, others in 16 bits
    qo = 2 * query_tokens * shape.heads * shape.head_dim * act * shape.layers
    n_pairs = qk_pairs(query_tokens, kv_tokens) if pairs is None else pairs
    if shape.sliding_window is not None and shape.sliding_layers:
        capped = min(n_pairs, query_tokens * shape.sliding_window)
        flops_pairs = (full * n_pairs + shape.sliding_layers * capped) / shape.layers
    else:
        flops_pairs = n_pairs
    flops = 4 * shape.heads * shape.head_dim * flops_pairs * shape.layers
    return Work(kv + qo, flops)


def gemm_work(m: int, n: int, k: int, elem_bytes: float) -> Work:
    """One (m×k)·(k×n) product: 2mnk FLOPs; A and B read, C written once."""
    return Work((m * k + k * n + m * n) * elem_bytes, 2.0 * m * n * k)


def decode_gemm_work(shape: ModelShape, tokens: int = 1) -> Work:
    """The weight GEMMs of a step over ``tokens`` new tokens: every weight but the embedding
    table is read once (the output head is one), 2 FLOPs per weight and token."""
    gemm_params = shape.gemm_params()
    # Each token's activations in and out of the Q/K/V, O, gate/up and down projections, and the head.
    qkv = (shape.heads + 2 * shape.kv_heads) * shape.head_dim
    per_layer = shape.hidden + qkv + shape.heads * shape.head_dim + 3 * shape.hidden + 3 * shape.intermediate
    act = (4 if shape.dtype == "fp32" else 2) * tokens * (per_layer * shape.layers + shape.hidden + shape.vocab)
    return Work(gemm_params * shape.weight_bits / 8 + act, 2.0 * gemm_params * tokens)


@dataclass(frozen=True)
class Achieved:
    """Work over a measured time, against a roof."""

    bytes: float
    flops: float
    seconds: float
    tb_s: float
    tflops: float
    intensity: float | None
    peak_share: float | None  # of the roof at this intensity: min(peak FLOP/s, intensity × bandwidth)
    bandwidth_share: float | None
    flops_share: float | None
    bound: str | None  # "memory" | "compute" (by the ridge point); None without a FLOP roof
    impossible: bool  # above the device's peak bandwidth or FLOP/s
    above_roof: bool = False  # above the roof: impossible for a peak, possible for a measured bandwidth

    def to_json(self, prefix: str = "") -> dict[str, Any]:
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(x, n)

        return {
            f"{prefix}bytes": self.bytes,
            f"{prefix}flops": self.flops,
            f"{prefix}achieved_tb_s": r(self.tb_s, 9),  # a CPU reads GB/s: keep 4 digits of them
            f"{prefix}achieved_tflops": r(self.tflops, 9),
            f"{prefix}intensity": r(self.intensity, 4),
            f"{prefix}peak_share": r(self.peak_share, 4),
            f"{prefix}bound": self.bound,
            f"{prefix}above_peak": self.impossible,
            f"{prefix}above_measured": self.above_roof and not self.impossible,
        }


def achieved(work: Work, seconds: float, roof: Roof | None, dtype: str = "bf16") -> Achieved | None:
    """What ``work`` done in ``seconds`` achieved, and how it stands against ``roof``."""
    if not (seconds > 0 and math.isfinite(seconds)) or work.bytes <= 0:
        return None
    seconds = float(seconds)
    tb_s = work.bytes / seconds / 1e12
    tflops = work.flops / seconds / 1e12
    intensity = work.intensity
    bw_share = flops_share = share = None
    bound = None
    impossible = above_roof = False
    if roof is not None:
        bw_share = tb_s / roof.bandwidth_tb_s
        peak = roof.peak_flops(dtype)
        if peak is not None:
            flops_share = tflops * 1e12 / peak
            ridge = peak / (roof.bandwidth_tb_s * 1e12)
            bound = "memory" if (intensity or 0.0) < ridge else "compute"
            attainable = min(peak, (intensity or 0.0) * roof.bandwidth_tb_s * 1e12)
            share = tflops * 1e12 / attainable if attainable > 0 else bw_share
        else:
            share = bw_share
        # Above a measured bandwidth is possible (the measurement is a floor): only a peak binds.
        above = bool(bw_share > 1.0 or (flops_share is not None and flops_share > 1.0))
        impossible = above and not roof.measured
        above_roof = above
    return Achieved(
        work.bytes,
        work.flops,
        seconds,
        tb_s,
        tflops,
        intensity,
        share,
        bw_share,
        flops_share,
        bound,
        impossible,
        above_roof,
    )


def decode_ceiling_tokens_per_s(shape: ModelShape, context: int, roof: Roof, *, batch: int = 1) -> float:
    """The most decode tokens/s the bandwidth allows at ``context``: each step reads every weight
    once (the embedding table aside: one row a token) and each sequence's KV cache, so ``batch`` tokens take (weights + batch × KV bytes) /
    peak bandwidth."""
    step_bytes = shape.step_weight_bytes() + batch * shape.kv_bytes(context)
    return batch * roof.bandwidth_tb_s * 1e12 / step_bytes


IMPOSSIBLE_CAUSES = (
    "wrong model facts (more layers, KV heads or bits than the model has: check --model-config)",
    "the wrong device (a slower device's peak: check --device)",
    "work classified into the wrong category (attention time that is really another kernel's, or missing kernels)",
    "overlapping kernels counted twice or a step's time cut short by the profiling window",
)


def impossible_message(what: str, a: Achieved, roof: Roof) -> str:
    """The finding for a figure above the roof. Above a device's peak it cannot be true, and the
    line names why it may read so; above a bandwidth capture measured it can (the copy test is a
    floor: read and write on the capture's threads, under whatever else ran), and the line says so."""
    over = []
    if a.bandwidth_share is not None and a.bandwidth_share > 1:
        peak = (
            f"the {bandwidth_gbs(roof.bandwidth_tb_s)} copy bandwidth capture measured"
            if roof.measured
            else f"the {roof.name}'s {bandwidth_gbs(roof.bandwidth_tb_s)}"
        )
        over.append(f"{bandwidth_gbs(a.tb_s)}, {a.bandwidth_share:.0%} of {peak}")
    if a.flops_share is not None and a.flops_share > 1:
        over.append(f"{a.tflops:.3g} TFLOP/s, {a.flops_share:.0%} of its peak")
    if roof.measured:
        return (
            f"{what} read at {' and '.join(over)}: above the measurement, which is a floor of this machine's "
            "bandwidth, not its peak (a copy reads and writes, on the capture's threads, under the load of the "
            "moment): shares of it above 100% mean the copy test ran slower, not that the figure is wrong."
        )
    return (
        f"{what} would have achieved {' and '.join(over)}: above the device's peak, which is impossible. "
        f"Likely causes: {'; '.join(IMPOSSIBLE_CAUSES)}."
    )


def bandwidth_gbs(tb_s: float) -> str:
    """TB/s where it is one or more, GB/s below (a CPU's tens of GB/s read better so)."""
    return f"{tb_s:.3g} TB/s" if tb_s >= 1 else f"{tb_s * 1000:.3g} GB/s"
