"""Findings: plain-language statements the report makes about the facts, each with a kind and a severity."""

from __future__ import annotations

from tracekit.report.model import Finding, ReportFacts

UNSYNCED_RATIO = 2.0  # synchronized prefill this many times the unsynchronized reading: a finding
OVERHEAD_LIMIT = 1.10
LAUNCH_BOUND_IDLE = 0.30


def _ms(x: float) -> str:
    return f"{x:.3g} ms" if x < 1000 else f"{x / 1000:.3g} s"


def findings_for(d: ReportFacts) -> list[Finding]:
    out: list[Finding] = []
    if not d.complete:
        out.append(
            Finding(
                "partial-run",
                "warning",
                "The capture did not finish (interrupted or crashed): the report covers the contexts that did.",
            )
        )
    for c in d.contexts:
        if c.status != "ok":
            out.append(
                Finding("failed-context", "error", f"Context {c.context_tokens} failed: {c.error or 'unknown error'}.")
            )
        elif c.error:
            out.append(Finding("trace-problem", "warning", f"Context {c.context_tokens}: {c.error}."))
    out.extend(_timing_integrity(d))
    out.extend(_growth(d))
    out.extend(_overheads(d))
    return out


def _timing_integrity(d: ReportFacts) -> list[Finding]:
    out = []
    for c in d.contexts:
        s, u = c.prefill_s, c.prefill_s_unsynced
        if s and u and u > 0 and s / u >= UNSYNCED_RATIO:
            out.append(
                Finding(
                    "unsynchronized-timer",
                    "error",
                    f"Prefill of {c.context_tokens} tokens: a timer read without synchronizing says {u:.3g} s "
                    f"({c.context_tokens / u:,.0f} tokens/s), but the device finished after {s:.3g} s "
                    f"({c.context_tokens / s:,.0f} tokens/s), {s / u:.1f}x longer. The host timer stopped when the work "
                    "was queued, not done: call torch.cuda.synchronize() (or read a result) before reading the timer.",
                )
            )
    seen: set[str] = set()
    for g in d.gaps:
        if g.name in seen or len(seen) >= 3:
            continue
        seen.add(g.name)
        pct = 100.0 * g.gap_us / g.true_dur_us if g.true_dur_us else 0.0
        out.append(
            Finding(
                "host-device-gap",
                "warning",
                f"'{g.name}' ends on the host {_ms(g.gap_us / 1000)} before the device work launched inside it does "
                f"(the work took {_ms(g.true_dur_us / 1000)}, the host span {_ms(g.host_dur_us / 1000)}): a host timer "
                f"around it under-measures by {pct:.1f}% unless it synchronizes first.",
            )
        )
    return out


def _growth(d: ReportFacts) -> list[Finding]:
    out = []
    att, other, total = d.fits.get("attention"), d.fits.get("other"), d.fits.get("total")
    if att and other:
        out.append(
            Finding(
                "attention-growth",
                "info",
                f"Attention grows {att.slope * 1000:.3g} ms per 1k tokens of context (R² {att.r2:.3f}); "
                f"the rest of a decode step grows {other.slope * 1000:.3g} ms per 1k tokens (R² {other.r2:.3f}).",
            )
        )
    if total:
        preds = ", ".join(f"{v:.1f} tokens/s at {k.split('@')[1]}" for k, v in d.growth.predictions.items())
        out.append(
            Finding(
                "decode-fit",
                "info",
                f"Decode time per token = {total.intercept:.3g} ms + {total.slope * 1000:.3g} ms per 1k tokens of context "
                f"(R² {total.r2:.3f} over {total.n} contexts)" + (f"; predicted {preds}." if preds else "."),
            )
        )
    if att and total:
        limit = int(d.model.max_context or 0)
        if d.growth.attention_half_at is None or (limit and d.growth.attention_half_at > limit):
            where = f"beyond {limit} tokens (the model's maximum)" if limit else "at no context length"
            out.append(Finding("attention-half", "info", f"Attention becomes half of a decode step {where}."))
        else:
            out.append(
                Finding(
                    "attention-half",
                    "info",
                    f"Attention becomes half of a decode step at about {d.growth.attention_half_at:,.0f} tokens of context.",
                )
            )
    return out


def _overheads(d: ReportFacts) -> list[Finding]:
    out = []
    worst = max((c for c in d.contexts if c.profiler_overhead), key=lambda c: c.profiler_overhead or 0.0, default=None)
    if worst and worst.profiler_overhead and worst.profiler_overhead > OVERHEAD_LIMIT:
        out.append(
            Finding(
                "profiler-overhead",
                "warning",
                f"The profiler slowed decoding by {100 * (worst.profiler_overhead - 1):.0f}% at context {worst.context_tokens}. "
                "Shares come from the trace; absolute times come from the unprofiled pass.",
            )
        )
    gpu = d.device.kind == "cuda"
    for c in d.contexts:
        if gpu and c.idle_share is not None and c.idle_share > LAUNCH_BOUND_IDLE:
            out.append(
                Finding(
                    "launch-bound",
                    "warning",
                    f"At context {c.context_tokens} the device is idle {100 * c.idle_share:.0f}% of each decode step: decoding is "
                    "launch-bound (host overhead between kernels), not kernel-bound. CUDA graphs or a fused engine help.",
                )
            )
            break
    ok = [c for c in d.contexts if c.bound_ms_per_token and c.decode_ms_per_token and c.bytes_per_step]
    if ok and d.bandwidth_gbps:
        c = ok[-1]
        ratio = (c.decode_ms_per_token or 0.0) / (c.bound_ms_per_token or 1.0)
        out.append(
            Finding(
                "bandwidth-bound",
                "info",
                f"At context {c.context_tokens} a decode step reads {(c.bytes_per_step or 0) / 1e6:,.1f} MB (weights + KV cache); at "
                f"{d.bandwidth_gbps:,.1f} GB/s ({d.bandwidth_source}) it cannot take less than {c.bound_ms_per_token:.3g} ms. "
                f"Measured: {c.decode_ms_per_token:.3g} ms, {ratio:.1f}x the bound.",
            )
        )
    return out
