"""The report of any traces as sections (``report.sections``): a headline first, then what the
traces cannot tell (no context, no synchronization check, too few steps), the growth fits, the
distance to the limit, the steps, the categories, and the plots (attention µs per step against KV
tokens with the fit; attention share per step; the roofline). Markdown (plots as PNG files beside
it) and one self-contained HTML page (inline SVG), both drawn by the run report's renderers, which
escape every string from a trace.
"""

from __future__ import annotations

from typing import Any

from tracekit.analysis.growth import Growth
from tracekit.limits.roofline import bandwidth_gbs
from tracekit.report.sections import Bullet, Bullets, Paragraph, Plots, Section, Table, advice_section, sources_text
from tracekit.report.traces import TracesReport, headline, iv_text, limits
from tracekit.report.traces_plots import plot

TITLE = "tracekit report: attention against context, step by step"
MAX_ROWS = 200  # steps shown in the table; the rest are in ``analyze --by step``
PLOTS = ("attention_vs_kv", "share_vs_kv", "roofline")


def _growth_table(g: Growth) -> Table:
    rows = []
    a, o = g.attention, g.other
    if a is not None:
        rows.append(
            [
                "attention per decode step, µs per 1k KV tokens",
                f"{a.slope * 1000:.4g}{iv_text(a.slope_ci95, 1000)}",
                str(a.n),
                f"{a.r2:.3f}",
            ]
        )
        rows.append(["attention per decode step at 0 KV tokens, µs", f"{a.intercept:.4g}", str(a.n), f"{a.r2:.3f}"])
        if g.at_kv is not None:
            rows.append(
                [
                    f"attention per decode step at {g.at_kv:,} KV tokens, µs",
                    f"{a.at(g.at_kv):.4g}{iv_text(a.at_ci95(g.at_kv))}",
                    str(a.n),
                    "",
                ]
            )
    if o is not None:
        rows.append(
            ["the rest per step, µs per query token", f"{o.slope:.4g}{iv_text(o.slope_ci95)}", str(o.n), f"{o.r2:.3f}"]
        )
    return Table(["figure", "value [95% interval]", "steps", "R²"], rows)


def _steps_table(r: TracesReport) -> Table:
    s = r.steps
    head = [
        "trace",
        "step",
        "phase",
        "requests",
        "query tokens",
        "KV tokens",
        "attention µs",
        "other µs",
        "idle µs",
        "span µs",
        "attention share",
    ]
    rows = []
    for i in range(min(len(s), MAX_ROWS)):

        def count(v: float) -> str:
            return "unknown" if v != v else f"{int(v):,}"

        share = s.attention_share[i]
        rows.append(
            [
                r.paths[int(s.trace[i])] if int(s.trace[i]) < len(r.paths) else "",
                "" if s.step[i] < 0 else str(int(s.step[i])),
                str(s.phase[i]),
                count(s.requests[i]),
                count(s.query_tokens[i]),
                count(s.kv_tokens[i]),
                f"{s.attention_us[i]:.1f}",
                f"{s.other_us[i]:.1f}",
                f"{s.idle_us[i]:.1f}",
                f"{s.span_us[i]:.1f}",
                "n/a" if share != share else f"{100 * share:.1f}%",
            ]
        )
    return Table(head, rows)


def plot_names(r: TracesReport) -> list[str]:
    """The plots this report has data for (the roofline needs achieved figures)."""
    names = [n for n in PLOTS if n != "roofline"]
    if any(row.get("attention_intensity") or row.get("gemm_intensity") for row in r.limit_rows):
        names.append("roofline")
    return names


def _limits_section(r: TracesReport) -> Section | None:
    lim = r.limits
    if lim is None:
        return None
    lines = []
    if lim.roof is not None:
        flops = ", ".join(f"{k} {v:g}" for k, v in lim.roof.tflops.items()) or "none known (pass --peak-flops)"
        lines.append(f"Roof: {bandwidth_gbs(lim.roof.bandwidth_tb_s)}, dense TFLOP/s {flops}; {lim.roof_source}")
    if lim.shape is not None:
        sh = lim.shape
        lines.append(
            f"Model facts: {sh.layers} layers, {sh.heads} heads / {sh.kv_heads} KV heads, head dim {sh.head_dim}, "
            f"KV cache at {sh.kv_bits:g} bits; {sources_text(sh.source)}"
        )
    lines += lim.notes + lim.step_notes
    items = [Bullet(x) for x in lines] + [Bullet(x, label="finding") for x in r.limit_findings]
    blocks: list[Any] = [Bullets(items)]
    rows = []
    s = r.steps
    for i, row in enumerate(r.limit_rows[:MAX_ROWS]):
        if row.get("attention_bytes") is None:
            continue

        def share(prefix: str, row: dict[str, Any] = row) -> str:
            if row[f"{prefix}above_peak"]:
                return "above peak"
            v = row[f"{prefix}peak_share"]
            return "n/a" if v is None else f"{100 * v:.1f}%"

        def bw(prefix: str, row: dict[str, Any] = row) -> str:
            v = row[f"{prefix}achieved_tb_s"]
            return "n/a" if v is None else bandwidth_gbs(v)

        rows.append(
            [
                "" if s.step[i] < 0 else str(int(s.step[i])),
                str(s.phase[i]),
                f"{int(s.kv_tokens[i]):,}",
                f"{row['attention_bytes'] / 1e9:.3g}",
                bw("attention_"),
                f"{row['attention_achieved_tflops']:.3g}",
                share("attention_"),
                row["attention_bound"] or "n/a",
                bw("step_"),
                share("step_"),
            ]
        )
    if rows:
        head = ["step", "phase", "KV tokens", "attention GB", "attention achieved", "attention TFLOP/s"]
        head += ["attention % of roof", "bound", "step achieved", "step % of roof"]
        blocks.append(Table(head, rows))
    return Section("Distance to the limit (achieved bandwidth and FLOP/s against the device's peaks)", blocks)


def sections(r: TracesReport, *, with_plots: bool = True) -> list[Section]:
    out = [Section(TITLE, [Paragraph(headline(r), label="Answer:")])]
    out.append(Section("What these traces cannot tell", [Bullets([Bullet(x) for x in limits(r)])]))
    out.append(Section("Growth across steps", [_growth_table(r.growth)]))
    lim = _limits_section(r)
    if lim is not None:
        out.append(lim)
    if with_plots and len(r.steps):
        out.append(Section("Plots", [Plots(plot_names(r))]))
    if r.advice is not None:
        out.append(advice_section(r.advice))
    shown = min(len(r.steps), MAX_ROWS)
    title = f"Steps ({shown} of {len(r.steps)}; all of them: tracekit analyze --by step)"
    out.append(Section(title, [_steps_table(r)]))
    cats = r.summary.categories
    total = sum(c.time_us for c in cats.values()) or 1.0
    rows = [
        [k, f"{v.time_us:.1f}", str(v.count), f"{100 * v.time_us / total:.1f}"]
        for k, v in sorted(cats.items(), key=lambda kv: -kv[1].time_us)
        if v.count
    ]
    out.append(
        Section("Device time by category, all traces", [Table(["category", "time µs", "count", "percent"], rows)])
    )
    traces = [Bullet(p) for p in r.paths] + [Bullet(f"{f.path}: {f.error}", label="failed") for f in r.failed]
    out.append(Section("Traces", [Bullets(traces)]))
    return out


def to_html(r: TracesReport) -> str:
    """One HTML page, drawn by the run report's renderer; plots inline as SVG."""
    from tracekit.report.renderers.htmlreport import e, render_sections

    def draw(b: Plots) -> str:
        out = []
        for name in b.names:
            svg = plot(r, name, "svg").decode("utf-8")
            out.append(f'<div class="plot" id="plot-{e(name)}">{svg[svg.find("<svg") :]}</div>')
        return "".join(out)

    return render_sections(sections(r), "tracekit report", draw)


def to_markdown(r: TracesReport, *, stem: str, attachments: bool = True) -> tuple[str, dict[str, bytes]]:
    """The Markdown text, drawn by the run report's renderer, and its plot files (relative path ->
    PNG bytes)."""
    from tracekit.report.renderers.markdown import render_sections

    files: dict[str, bytes] = {}

    def draw(b: Plots) -> list[str]:
        out = []
        for name in b.names:
            rel = f"{stem}-plots/{name}.png"
            files[rel] = plot(r, name, "png")
            out.append(f"![{name}]({rel})")
        return out

    return render_sections(sections(r, with_plots=attachments), draw), files
