"""Report plots (matplotlib, Agg): each function draws one figure from ReportData."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracekit.report.model import ReportData

# A fixed color per category so every plot and run reads the same way.
COLORS = {
    "attention": "#d62728",
    "kv_cache": "#ff9896",
    "gemm": "#1f77b4",
    "convolution": "#98df8a",
    "norm": "#aec7e8",
    "rope": "#9467bd",
    "activation": "#c5b0d5",
    "elementwise": "#7f7f7f",
    "sampling": "#bcbd22",
    "memcpy": "#17becf",
    "memset": "#9edae5",
    "communication": "#8c564b",
    "other": "#c7c7c7",
    "idle": "#ffffff",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def stacked_categories(d: ReportData) -> Any:
    plt = _plt()
    ok = [c for c in d.ok_contexts() if c.categories_ms_per_token]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [str(c.context_tokens) for c in ok]
    bottom = [0.0] * len(ok)
    cats = sorted(
        {k for c in ok for k in c.categories_ms_per_token}, key=lambda k: list(COLORS).index(k) if k in COLORS else 99
    )
    for cat in cats:
        vals = [c.categories_ms_per_token.get(cat, 0.0) for c in ok]
        ax.bar(
            labels, vals, bottom=bottom, label=cat, color=COLORS.get(cat, "#333333"), edgecolor="#444444", linewidth=0.3
        )
        bottom = [b + v for b, v in zip(bottom, vals)]
    idle = [max(0.0, (c.decode_ms_per_token or 0.0) - b) for c, b in zip(ok, bottom)]
    ax.bar(
        labels,
        idle,
        bottom=bottom,
        label="idle / host",
        color="#ffffff",
        edgecolor="#999999",
        hatch="//",
        linewidth=0.3,
    )
    ax.set_xlabel("context tokens")
    ax.set_ylabel("ms per decoded token")
    ax.set_title("Decode time per token by category")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def tokens_vs_bound(d: ReportData) -> Any:
    plt = _plt()
    ok = d.ok_contexts()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [c.context_tokens for c in ok]
    ax.plot(xs, [c.tokens_per_s for c in ok], "o-", color="#1f77b4", label="measured tokens/s")
    bound = [(c.context_tokens, 1000.0 / c.bound_ms_per_token) for c in ok if c.bound_ms_per_token]
    if bound:
        ax.plot(
            [b[0] for b in bound],
            [b[1] for b in bound],
            "s--",
            color="#2ca02c",
            label=f"bandwidth bound ({d.bandwidth_gbps:,.0f} GB/s)",
        )
    total = d.fits.get("total")
    if total and xs:
        grid = [max(xs) * i / 50 for i in range(1, 51)]
        ax.plot(
            grid,
            [1000.0 / total.at(x) if total.at(x) > 0 else float("nan") for x in grid],
            ":",
            color="#555555",
            label=f"fit (R² {total.r2:.3f})",
        )
    ax.set_xlabel("context tokens")
    ax.set_ylabel("decode tokens/s")
    ax.set_yscale("log")
    ax.set_title("Decode speed against the memory-bandwidth bound")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def attention_share(d: ReportData) -> Any:
    plt = _plt()
    ok = [c for c in d.ok_contexts() if c.attention_share is not None]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(
        [c.context_tokens for c in ok], [100 * (c.attention_share or 0) for c in ok], "o-", color=COLORS["attention"]
    )
    ax.axhline(50, color="#999999", linewidth=0.8, linestyle="--")
    ax.set_xlabel("context tokens")
    ax.set_ylabel("attention share of a decode step (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Attention share against context")
    fig.tight_layout()
    return fig


PLOTS = {"categories": stacked_categories, "tokens_vs_bound": tokens_vs_bound, "attention_share": attention_share}


def render(d: ReportData, fmt: str, names: list[str] | None = None) -> dict[str, bytes]:
    """The plots named (default: all) as ``fmt`` ("png" or "svg") bytes, by name."""
    plt = _plt()
    out = {}
    for name in names if names is not None else list(PLOTS):
        fig = PLOTS[name](d)
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=110)
        plt.close(fig)
        out[name] = buf.getvalue()
    return out
