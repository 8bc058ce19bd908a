"""Measurement first: the checks that say a measurement cannot carry advice lead the list."""

from __future__ import annotations

from tracekit.advice.model import Advice, Basis, Check

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


def measurement(b: Basis) -> list[Advice]:
    out = []
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
    """Whether a check says the measurement itself cannot be trusted (not only that it is noisy)."""
    return any(c.severity == "error" for c in b.checks)
