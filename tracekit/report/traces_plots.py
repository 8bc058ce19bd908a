"""The step report's plots: attention per step against KV tokens, its share, and the roofline."""

from __future__ import annotations

import numpy as np

from tracekit.report.traces import TracesReport


def _roofline(r: TracesReport, fmt: str) -> bytes:
    """Attention and the weight GEMMs of each step under the device's roof."""
    from tracekit.report.plots import roofline_figure, to_bytes

    series = []
    for label, prefix, color, marker in (
        ("attention, per step", "attention_", "#d62728", "o"),
        ("weight GEMMs, per step", "gemm_", "#1f77b4", "s"),
    ):
        pts = [
            (float(row[f"{prefix}intensity"]), float(row[f"{prefix}achieved_tflops"]) * 1e12, "")
            for row in r.limit_rows
            if row.get(f"{prefix}intensity") and row.get(f"{prefix}achieved_tflops")
        ]
        series.append((label, color, marker, pts))
    lim = r.limits
    dtype = lim.shape.dtype if lim is not None and lim.shape is not None else "bf16"
    fig = roofline_figure(
        lim.roof if lim is not None else None, dtype, series, "Roofline: attention and GEMMs, step by step"
    )
    return to_bytes(fig, fmt, dpi=110)


def plot(r: TracesReport, name: str, fmt: str) -> bytes:
    from tracekit.report.plots import figure, to_bytes

    if name == "roofline":
        return _roofline(r, fmt)
    s = r.steps
    known = np.isfinite(s.kv_tokens)
    decode = known & (s.phase == "decode")
    rest = known & ~decode
    fig, ax = figure(7, 4)
    if name == "attention_vs_kv":
        ax.scatter(s.kv_tokens[decode], s.attention_us[decode], s=12, color="#d62728", label="decode steps")
        if rest.any():
            ax.scatter(s.kv_tokens[rest], s.attention_us[rest], s=12, color="#1f77b4", marker="x", label="other steps")
        a = r.growth.attention
        if a is not None:
            xs = np.linspace(a.x_min, a.x_max, 50)
            ax.plot(xs, a.intercept + a.slope * xs, color="#444444", label="least-squares fit")
            band = a.replicates[np.isfinite(a.replicates[:, 0])]
            if len(band):
                ys = band[:, 1][:, None] + band[:, 0][:, None] * xs[None, :]
                lo, hi = np.percentile(ys, [2.5, 97.5], axis=0)
                ax.fill_between(xs, lo, hi, color="#999999", alpha=0.3, label="95% interval")
        ax.set_ylabel("attention µs per step")
        ax.set_title("Attention per step against KV tokens")
    else:
        share = np.isfinite(s.attention_share) & known
        ax.scatter(s.kv_tokens[share], 100 * s.attention_share[share], s=12, color="#d62728")
        ax.set_ylabel("attention share of device time, %")
        ax.set_title("Attention share per step")
    ax.set_xlabel("KV tokens in the step (sum over requests)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return to_bytes(fig, fmt)
