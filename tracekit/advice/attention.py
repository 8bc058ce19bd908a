"""Attention implementation: the measured difference against a run with another one, else the
exact command that would measure it; and, when the bytes read explain little of the slowdown,
the lever that is left."""

from __future__ import annotations

import shlex

from tracekit.advice.common import ci, gain_reps, interval, pct
from tracekit.advice.measurement import doubted
from tracekit.advice.model import Advice, Basis

EXPLAINS_LITTLE = 0.5  # the bytes' growth explains under half of the slowdown

# What else each engine offers (the capture's --attn choices).
ALTERNATIVES = {
    "builtin": {"sdpa": "math", "math": "sdpa"},
    "hf": {"sdpa": "flash_attention_2", "eager": "sdpa", "flash_attention_2": "sdpa"},
    "exllamav2": {"flash": "sdpa", "xformers": "flash", "sdpa": "flash", "matmul": "flash"},
}


def compared(b: Basis, other: Basis) -> Advice | None:
    """``other`` against ``b`` at their common contexts: ms per token, tokens/s gain with intervals."""
    mine = {p.context: p for p in b.points}
    common = [(mine[p.context], p) for p in other.points if p.context in mine]
    if not common:
        return None
    parts = []
    for p, q in common:
        d = q.ms - p.ms
        d_ci = interval(q.reps - p.reps) if p.reps is not None and q.reps is not None else None
        parts.append(f"{p.context:,}: {p.ms:.3g} → {q.ms:.3g} ms ({d:+.3g}{ci(d_ci, '{:+.3g}')})")
    p, q = common[-1]
    gain = p.ms / q.ms - 1.0
    gain_ci = interval(gain_reps(p.reps, q.reps))
    name, other_name = b.attn or "this run's attention", other.attn or "the other run's attention"
    if gain_ci is not None and gain_ci[0] <= 0 <= gain_ci[1]:
        verdict = (
            f"the runs cannot tell {other_name} from {name} at context {p.context:,} (the interval includes no change)"
        )
    elif gain > 0:
        verdict = f"{other_name} is faster than {name}"
    else:
        verdict = f"{other_name} is slower than {name}: keep {name}"
    claim = (
        f"Attention {other_name} instead of {name}: {pct(gain)}{ci(gain_ci, '{:+.0f}%', 100)} tokens/s at context "
        f"{p.context:,}; {verdict}. ms per token by context: " + "; ".join(parts) + "."
    )
    return Advice(
        "attention",
        claim,
        gain,
        gain_ci,
        (f"{b.source} against {other.source}, measured at {len(common)} common contexts",),
        (
            "both runs measured the same model on the same machine, under the same load",
            *((f"{other.source}: a measurement its own checks doubt",) if doubted(other) else ()),
        ),
        gain_basis=f"tokens/s at context {p.context:,}, {other_name} against {name}",
        figures={"context": p.context, "ms_before": p.ms, "ms_after": q.ms},
    )


def measure_command(b: Basis, run: str) -> Advice | None:
    """The exact capture that would measure another attention implementation."""
    if not b.command or not b.attn:
        return None
    words = shlex.split(b.command)
    backend = words[words.index("--backend") + 1] if "--backend" in words else "builtin"
    other = ALTERNATIVES.get(backend, {}).get(b.attn)
    if other is None:
        return None
    if "--attn" in words:
        words[words.index("--attn") + 1] = other
    else:
        words += ["--attn", other]
    if "--name" in words:
        i = words.index("--name") + 1
        words[i] = words[i].replace(b.attn, other) if b.attn in words[i] else f"{words[i]}-{other}"
    cmd = shlex.join(words)
    claim = (
        f"No run with another attention implementation to compare: measure {other} against {b.attn} with "
        f"'{cmd}', then 'tracekit advise {shlex.quote(run)} --compare NEW_RUN' (or 'tracekit diff')."
    )
    return Advice(
        "attention", claim, None, None, (f"{b.source}'s capture settings",), gain_basis="a measurement to make"
    )


def lever(
    b: Basis, share: float | None, share_ci: tuple[float, float] | None, bound: float | None, added: float | None
) -> Advice | None:
    """When the bytes read explain little of the slowdown, name what is left: compute or the
    attention implementation. With an interval, its upper end must be under ``EXPLAINS_LITTLE``: an
    interval that reaches past it says the data cannot tell, and the advice says so instead."""
    if share is None or bound is None or added is None or share >= EXPLAINS_LITTLE or b.shape is None:
        return None
    a, z = b.points[0], b.points[-1]
    kv_share = b.batch * b.shape.kv_bytes(z.context) / b.shape.step_weight_bytes()
    measured = (
        f"From context {a.context:,} to {z.context:,} a step got {added:.3g} ms slower; reading the longer KV cache at "
        f"peak bandwidth explains {bound:.3g} ms of it, {100 * share:.0f}%{ci(share_ci, '{:.0f}', 100)} (at "
        f"{z.context:,} tokens the cache is {100 * kv_share:.1f}% of the weights' bytes)."
    )
    basis = (f"the measured steps at contexts {a.context:,} and {z.context:,} ({b.source})", "the bandwidth bound")
    figures = {"bound_explains": share, "kv_share_of_weights": kv_share}
    if share_ci is not None and not share_ci[1] < EXPLAINS_LITTLE:
        return Advice(
            "attention",
            f"{measured} The interval reaches {100 * EXPLAINS_LITTLE:.0f}% or more, so whether the growth is memory "
            "traffic or compute and implementation is inconclusive: measure more rounds or longer contexts.",
            None,
            None,
            basis,
            gain_basis="inconclusive: the interval spans both readings",
            figures=figures,
            figures_ci95={"bound_explains": share_ci},
        )
    claim = (
        f"{measured} The growth is compute or implementation, not memory traffic: the lever is the attention kernel "
        "(a fused decode kernel such as flash-decoding or paged attention that reads the cache once at full "
        "bandwidth), not a smaller cache."
    )
    return Advice(
        "attention",
        claim,
        None,
        None,
        basis,
        ("the KV cache is read once per step (a kernel that rereads it makes memory traffic explain more)",),
        gain_basis="where the growth is, not a speed-up",
        figures=figures,
        figures_ci95={"bound_explains": share_ci},
    )
