"""Measurement first: the checks that say a measurement cannot carry advice lead the list."""

from __future__ import annotations

from tracekit.advice.common import mb
from tracekit.advice.model import Advice, Basis, Check
from tracekit.advice.projection import above_ceiling, step_bytes

# The report's findings that question the measurement itself, with what to do about each.
DOUBTS = {
    "unsynchronized-timer": "time only after torch.cuda.synchronize() (or after reading a result)",
    "host-device-gap": "read host spans only after synchronizing",
    "busy-machine": "capture again on a quiet machine (close other programs)",
    "noisy-measurement": "capture again with more --rounds, on a quieter machine",
    "partial-run": "capture the missing contexts again",
    "own-timer": "read your timer only after torch.cuda.synchronize(), or measure with 'tracekit capture'",
}

OWN_TIMER = Check(
    "own-timer",
    "warning",
    "These speeds come from your own timer: tracekit cannot tell whether it waited for the device. A CUDA timer read "
    "without torch.cuda.synchronize() stops when the work is queued, not done (a prefill then looks many times faster "
    "than it is).",
)


def impossible(b: Basis) -> Advice | None:
    """A measured speed above the bandwidth ceiling (a step reading its bytes faster than the
    device's peak): the speed, the model's bytes or the device is wrong."""
    found = above_ceiling(b)
    if not found or b.shape is None or not b.bandwidth_gbps:
        return None
    c, tps, ceiling = max(found, key=lambda f: f[1] / f[2])
    where = ", ".join(f"{t:,.1f} tokens/s at context {x:,} (ceiling {top:,.1f})" for x, t, top in found)
    claim = (
        f"Measured speeds above the bandwidth ceiling: {where}. A step at context {c:,} reads "
        f"{mb(sum(step_bytes(b, b.shape, c)))} ({b.shape.weight_bits:g}-bit weights, a {b.shape.kv_bits:g}-bit KV "
        f"cache) and at {b.bandwidth_gbps:,.1f} GB/s cannot take less than {1000.0 * b.batch / ceiling:.3g} ms; "
        f"{tps:,.1f} tokens/s is {100 * tps / ceiling:.0f}% of what the bandwidth allows, which no step reaches. "
        "Likely causes: the wrong model or --weight-bits (a 4-bit model reads a quarter of a 16-bit one's bytes), the "
        "wrong device (its peak bandwidth), or a timer read before the device finished (torch.cuda.synchronize()). "
        "Projections from these speeds are left out."
    )
    return Advice(
        "measurement",
        claim,
        None,
        None,
        (f"the measured speeds ({b.source})", f"the bandwidth {b.bandwidth_source or 'given'}", "the model's bytes"),
        severity="error",
        gain_basis="advice on a bad measurement is worse than none",
        figures={"context": c, "measured_tokens_per_s": tps, "ceiling_tokens_per_s": ceiling},
    )


def measurement(b: Basis) -> list[Advice]:
    out = []
    bad = impossible(b)
    if bad is not None:
        out.append(bad)  # leads: nothing below holds if the speeds cannot be
    if not b.measured:
        out.append(
            Advice(
                "measurement",
                "Nothing was measured: the figures below are ceilings from the model's bytes and the device's peak "
                "bandwidth. Measure with 'tracekit capture' (or pass speeds you measured with --measured) to see how "
                "far from them decoding runs.",
                None,
                None,
                (b.source,),
                gain_basis="a measurement to make",
            )
        )
    for c in b.checks:
        todo = DOUBTS.get(c.kind, "measure again with 'tracekit capture'")
        out.append(
            Advice(
                "measurement",
                f"{c.message.rstrip('.')}. Before acting on the advice below: {todo}.",
                None,
                None,
                (f"the check '{c.kind}' ({b.source})",),
                severity=c.severity,
                gain_basis="advice on a bad measurement is worse than none",
            )
        )
    return out


def doubted(b: Basis) -> bool:
    """Whether a check says the measurement itself cannot be trusted (not only that it is noisy),
    or a measured speed is above the bandwidth ceiling."""
    return any(c.severity == "error" for c in b.checks) or bool(above_ceiling(b))
