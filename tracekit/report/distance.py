"""How far a run is from the hardware limit, in words: the "distance to the limit" line the
headline calls, and the truth check (a figure above the device's peak is a finding, never a
silent share above 100 %)."""

from __future__ import annotations

from tracekit.limits.roofline import Achieved, Roof, bandwidth_gbs, impossible_message
from tracekit.report.model import ContextFigures, Finding, ReportFacts

bandwidth_text = bandwidth_gbs


def _parts(c: ContextFigures) -> list[tuple[str, Achieved]]:
    return [
        (w, a)
        for w, a in (("attention", c.attention), ("the weight GEMMs", c.gemm), ("the whole decode step", c.step))
        if a is not None
    ]


def limit_findings(d: ReportFacts) -> list[Finding]:
    """The truth check: attention, GEMMs or a step that would have beaten the device's peak."""
    roof = d.roof
    if roof is None:
        return []
    out = []
    for c in d.contexts:
        for what, a in _parts(c):
            if a.impossible:
                out.append(
                    Finding(
                        "above-peak", "error", f"At context {c.context_tokens}, " + impossible_message(what, a, roof)
                    )
                )
            elif a.above_roof:
                out.append(
                    Finding(
                        "above-measured",
                        "warning",
                        f"At context {c.context_tokens}, " + impossible_message(what, a, roof),
                    )
                )
    return out


def distance_line(d: ReportFacts) -> str | None:
    """One sentence at the largest context: attention's achieved bandwidth against the device's
    peak, and the ceiling the bandwidth puts on decode tokens/s beside the measured. None without
    a roof or model facts."""
    roof = d.roof
    ok = [c for c in d.contexts if c.status == "ok" and c.attention is not None]
    if roof is None or not ok:
        return None
    c = ok[-1]
    a = c.attention
    assert a is not None
    text = f"At context {c.context_tokens}, attention read the KV cache at {bandwidth_text(a.tb_s)}, " + _share(a, roof)
    if c.ceiling_tokens_per_s and c.tokens_per_s:
        text += (
            f"; the bandwidth allows at most {c.ceiling_tokens_per_s:,.0f} tokens/s there (weights + KV cache at "
            f"{'the measured' if roof.measured else 'peak'} bandwidth), "
            f"measured {c.tokens_per_s:,.1f} ({c.tokens_per_s / c.ceiling_tokens_per_s:.0%} of that ceiling)"
        )
    return text + "."


def _share(a: Achieved, roof: Roof) -> str:
    if roof.key:
        peak = f"the {_short(roof)}'s {bandwidth_text(roof.bandwidth_tb_s)}"
    elif roof.measured:
        peak = f"the {bandwidth_text(roof.bandwidth_tb_s)} capture measured on this machine"
    else:
        peak = f"the given peak of {bandwidth_text(roof.bandwidth_tb_s)}"
    if a.impossible:
        return f"above {peak}, which is impossible (see the findings)"
    share = a.bandwidth_share if a.bandwidth_share is not None else 0.0
    bound = f", {a.bound}-bound" if a.bound else ""
    if a.above_roof:
        return f"{share:.1f}x {peak} (a floor, not a peak: see the findings){bound}"
    return f"{share:.0%} of {peak}{bound}"


def _short(roof: Roof) -> str:
    """The device's name without its vendor and memory size ("H100 SXM5", "MI300X")."""
    words = [w for w in roof.name.split() if w not in ("NVIDIA", "AMD", "Instinct", "GeForce", "Tesla")]
    if len(words) > 1 and words[-1].upper().endswith("GB"):
        words = words[:-1]
    return " ".join(words) or roof.name
