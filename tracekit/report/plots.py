"""Report plots (matplotlib, Agg): each function draws one figure from ReportFacts."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tracekit.sanitize import printable

if TYPE_CHECKING:
    from tracekit.limits.roofline import Roof
    from tracekit.report.model import ReportFacts

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
    "moe_routing": "#dbdb8d",
    "memcpy": "#17becf",
    "memset": "#9edae5",
    "communication": "#8c564b",
    "other": "#c7c7c7",
    "idle": "#ffffff",
}


def _errorbar(
    ax: Any,
    xs: Sequence[Any],
    values: list[float],
    intervals: list[tuple[float, float] | None],
    scale: float = 1.0,
    **style: Any,
) -> None:
    """Points with asymmetric error bars (below, above) from their 95 % intervals, each interval
    in the values' unit once multiplied by ``scale``; a point without an interval gets a bar of no length."""
    lo = [max(0.0, v - iv[0] * scale) if iv else 0.0 for v, iv in zip(values, intervals)]
    hi = [max(0.0, iv[1] * scale - v) if iv else 0.0 for v, iv in zip(values, intervals)]
    ax.errorbar(xs, values, yerr=[lo, hi], capsize=4, **style)


def figure(width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes, made without pyplot: no backend is chosen or changed (a notebook's
    inline backend stays), and no figure is left open in pyplot's registry."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def to_bytes(fig: Any, fmt: str, **savefig: Any) -> bytes:
    """The figure in ``fmt``. An SVG carries no date and salts its element ids with a constant, so
    the same report renders to the same bytes and two reports can be compared with ``diff``."""
    from matplotlib import rc_context

    buf = io.BytesIO()
    if fmt == "svg":
        savefig.setdefault("metadata", {"Date": None})
    with rc_context({"svg.hashsalt": "tracekit"}):
        fig.savefig(buf, format=fmt, **savefig)
    return buf.getvalue()


def stacked_categories(d: ReportFacts) -> Any:
    ok = [c for c in d.ok_contexts() if c.categories_ms_per_token]
    fig, ax = figure(7, 4)
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
    totals = [c.decode_ms_per_token or 0.0 for c in ok]
    if any(c.decode_ms_per_token_ci95 for c in ok):
        intervals = [c.decode_ms_per_token_ci95 for c in ok]
        _errorbar(
            ax, labels, totals, intervals, fmt="none", ecolor="#222222", linewidth=1, label="95% interval of the step"
        )
    ax.set_xlabel("context tokens")
    ax.set_ylabel("ms per decoded token")
    ax.set_title("Decode time per token by category")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def tokens_vs_bound(d: ReportFacts) -> Any:
    ok = d.ok_contexts()
    fig, ax = figure(7, 4)
    xs = [c.context_tokens for c in ok]
    tps = [c.tokens_per_s or 0.0 for c in ok]
    intervals = [c.tokens_per_s_ci95 for c in ok]
    _errorbar(ax, xs, tps, intervals, fmt="o-", color="#1f77b4", label="measured tokens/s (95% interval)")
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
        band = _fit_band(d, grid)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color="#555555", alpha=0.15, linewidth=0, label="fit, 95% band")
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


def attention_share(d: ReportFacts) -> Any:
    ok = [c for c in d.ok_contexts() if c.attention_share is not None]
    fig, ax = figure(7, 3.5)
    shares = [100 * (c.attention_share or 0) for c in ok]
    intervals = [c.attention_share_ci95 for c in ok]
    _errorbar(ax, [c.context_tokens for c in ok], shares, intervals, 100.0, fmt="o-", color=COLORS["attention"])
    ax.axhline(50, color="#999999", linewidth=0.8, linestyle="--")
    ax.set_xlabel("context tokens")
    ax.set_ylabel("attention share of a decode step (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Attention share against context (95% intervals)")
    fig.tight_layout()
    return fig


def _fit_band(d: ReportFacts, grid: list[float]) -> tuple[list[float], list[float]] | None:
    """The 95 % band of the fitted tokens/s over ``grid``: the fit redone on every bootstrap replicate."""
    import numpy as np

    from tracekit.report.fit import fit_replicates
    from tracekit.report.uncertainty import decode_reps, stacked

    ok = d.ok_contexts()
    reps = stacked(ok, decode_reps)
    xs = [float(c.context_tokens) for c in ok]
    if reps is None or len(set(xs)) < 2:
        return None
    a, b = fit_replicates(xs, reps)
    ms = a[:, None] + b[:, None] * np.asarray(grid)[None, :]
    tps = np.where(ms > 0, 1000.0 / np.where(ms > 0, ms, 1.0), np.nan)
    lo, hi = np.nanpercentile(tps, [2.5, 97.5], axis=0)
    return [float(x) for x in lo], [float(x) for x in hi]


Point = tuple[float, float, str]  # intensity (FLOP/byte), achieved FLOP/s, label ("" for none)


def roofline_figure(roof: Roof | None, dtype: str, series: list[tuple[str, str, str, list[Point]]], title: str) -> Any:
    """A log-log roofline: each series' points (achieved FLOP/s against intensity) under the
    roof min(peak FLOP/s, intensity × bandwidth), with the ridge point where the peak is known."""
    import numpy as np

    fig, ax = figure(7, 4.5)
    xs = [x for *_, pts in series for x, _, _ in pts if x > 0]
    ys = [max(y, 1.0) for *_, pts in series for _, y, _ in pts]
    peak = roof.peak_flops(dtype) if roof is not None else None
    ridge = roof.ridge(dtype) if roof is not None else None
    lo = min(xs + [0.1]) / 4
    hi = max(xs + [10.0] + ([ridge] if ridge else [])) * 4  # the flat part of the roof shows
    if roof is not None:
        grid = np.logspace(np.log10(lo), np.log10(hi), 200)
        bw = roof.bandwidth_tb_s * 1e12
        roof_y = np.minimum(grid * bw, peak) if peak else grid * bw
        what = f"{bw / 1e12:.3g} TB/s" + (f", {peak / 1e12:,.4g} TFLOP/s {dtype}" if peak else ", no FLOP/s peak known")
        ax.plot(grid, roof_y, "-", color="#222222", linewidth=1.5, label=printable(f"roof: {roof.name} ({what})"))
        if peak and ridge:
            ax.axvline(
                ridge, color="#999999", linewidth=0.8, linestyle=":", label=f"ridge point ({ridge:.3g} FLOP/byte)"
            )
        ys.append(float(roof_y.max()))
    for label, color, marker, pts in series:
        pts = [p for p in pts if p[0] > 0 and p[1] > 0]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, color=color, linestyle="none", label=printable(label))
        for x, y, text in pts:
            if text:
                ax.annotate(printable(text), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(ys + [1.0]) / 10, max(ys + [10.0]) * 3)
    ax.set_xlabel("arithmetic intensity (FLOP per byte of DRAM traffic)")
    ax.set_ylabel("achieved FLOP/s")
    ax.set_title(printable(title))  # names from traces and manifests: the SVG lands in the HTML
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def roofline(d: ReportFacts) -> Any:
    """Attention and the weight GEMMs of a decode step at each context, under the device's roof;
    the smallest and largest contexts labelled (the rest sit between)."""
    ok = d.ok_contexts()
    series: list[tuple[str, str, str, list[Point]]] = []
    for label, color, marker, pts in (
        ("attention, per decode step", COLORS["attention"], "o", [(c.context_tokens, c.attention) for c in ok]),
        ("weight GEMMs, per decode step", COLORS["gemm"], "s", [(c.context_tokens, c.gemm) for c in ok]),
    ):
        got = [(ctx, a) for ctx, a in pts if a is not None and a.intensity]
        ends = {got[0][0], got[-1][0]} if got else set()
        series.append(
            (
                label,
                color,
                marker,
                [(a.intensity or 0.0, a.tflops * 1e12, str(ctx) if ctx in ends else "") for ctx, a in got],
            )
        )
    dtype = d.shape.dtype if d.shape is not None else "bf16"
    return roofline_figure(
        d.roof, dtype, series, "Roofline: attention and weight GEMMs at each context (labels: context)"
    )


PLOTS = {
    "categories": stacked_categories,
    "tokens_vs_bound": tokens_vs_bound,
    "attention_share": attention_share,
    "roofline": roofline,
}


def available(d: ReportFacts) -> list[str]:
    """The plots this report has data for (the roofline needs achieved figures)."""
    names = [n for n in PLOTS if n != "roofline"]
    if any(c.attention is not None or c.gemm is not None for c in d.ok_contexts()):
        names.append("roofline")
    return names


def render(d: ReportFacts, fmt: str, names: list[str] | None = None) -> dict[str, bytes]:
    """The plots named (default: all) as ``fmt`` ("png" or "svg") bytes, by name."""
    return {name: to_bytes(PLOTS[name](d), fmt, dpi=110) for name in (names if names is not None else available(d))}
