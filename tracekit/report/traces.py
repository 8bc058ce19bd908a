"""The report of any traces (not a capture run): from their steps, what attention costs against context.

Built from the per-trace partials (``fleet.task``: the step table of each trace, its categories)
and the growth fits over all steps (``analysis.growth``): a headline first, then what the traces
cannot tell (no context, no synchronization check, too few steps), the growth fits, the steps,
the categories, and two plots (attention µs per step against KV tokens with the fit; attention
share per step). Markdown (plots as PNG files beside it) and one self-contained HTML page (inline
SVG). Every string from a trace is escaped.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracekit.advise import AdviceSet, Plan, advise_steps
from tracekit.advise.document import to_json as advice_json
from tracekit.analysis.growth import Growth, growth
from tracekit.analysis.steps import StepTable, concat
from tracekit.fleet.merge import Summary, summarize
from tracekit.fleet.task import Failure, TracePartial
from tracekit.report.sections import Bullet, Bullets, Paragraph, Plots, Section, Table, advice_section
from tracekit.sanitize import printable

TITLE = "tracekit report: attention against context, step by step"
MAX_ROWS = 200  # steps shown in the table; the rest are in ``analyze --by step``
PLOTS = ("attention_vs_kv", "share_vs_kv")


@dataclass
class TracesReport:
    paths: list[str]
    steps: StepTable
    growth: Growth
    summary: Summary
    failed: list[Failure] = field(default_factory=list)
    graph_count: int = 0
    unlinked_count: int = 0
    devices: list[str] = field(default_factory=list)
    advice: AdviceSet | None = None  # "What would help" (``tracekit.advise``), tracekit's default plan


def build(partials: list[TracePartial], failed: list[Failure], at_kv: int | None = None) -> TracesReport:
    tables = [p.steps for p in partials if p.steps is not None]
    steps = concat(tables)
    return TracesReport(
        paths=[p.result.path for p in partials],
        steps=steps,
        growth=growth(steps, at_kv),
        summary=summarize(partials, failed),
        failed=list(failed),
        graph_count=sum(p.result.graph_count for p in partials),
        unlinked_count=sum(p.result.unlinked_count for p in partials),
        devices=sorted({p.result.device for p in partials}),
        advice=advise_steps(steps, Plan(), what=f"{len(partials)} trace{'s' if len(partials) != 1 else ''}"),
    )


def _us(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _iv(iv: tuple[float, float] | None, scale: float = 1.0) -> str:
    return "" if iv is None else f" [{_us(iv[0] * scale)}–{_us(iv[1] * scale)}]"


def headline(r: TracesReport) -> str:
    """The answer in one paragraph: how attention per decode step grew with KV tokens, or why it cannot be said."""
    s, g, a = r.steps, r.growth, r.growth.attention
    n_traces = len(r.paths)
    lead = f"{len(s)} steps in {n_traces} trace{'s' if n_traces != 1 else ''}"
    if a is None:
        why = g.notes[0] if g.notes else "no fit"
        share = _share_text(s)
        return f"{lead}: attention against KV tokens cannot be fitted ({why}).{share}"
    lo_kv, hi_kv = a.x_min, a.x_max
    text = (
        f"From {lo_kv:,.0f} to {hi_kv:,.0f} KV tokens per decode step, attention went from {_us(a.at(lo_kv))} to "
        f"{_us(a.at(hi_kv))} µs per step: {_us(a.slope * 1000)} µs per 1,000 KV tokens{_iv(a.slope_ci95, 1000)} "
        f"(95% interval over {a.n} decode steps, R² {a.r2:.2f})"
    )
    if not a.conclusive:
        text += "; the interval includes zero, so growth is inconclusive"
    if g.at_kv is not None:
        text += f"; at {g.at_kv:,} KV tokens the fit predicts {_us(a.at(g.at_kv))}{_iv(a.at_ci95(g.at_kv))} µs per step"
    return f"{text}.{_share_text(s)} ({lead}.)"


def _share_text(s: StepTable) -> str:
    decode = (s.phase == "decode") & np.isfinite(s.attention_share)
    if not decode.any():
        return ""
    att, other = float(s.attention_us[decode].sum()), float(s.other_us[decode].sum())
    return f" Attention was {100 * att / (att + other):.1f}% of decode steps' device time." if att + other > 0 else ""


def limits(r: TracesReport) -> list[str]:
    """What these traces cannot tell, said rather than guessed."""
    s = r.steps
    out = []
    if not len(s):
        out.append("the traces hold no steps: no per-step figures")
    unknown = int(np.count_nonzero(np.isnan(s.kv_tokens)))
    if unknown:
        out.append(f"{unknown} of {len(s)} steps have no KV length (context unknown): they are left out of the fit")
    out.append(
        "no synchronization check: a trace records device time, not the synchronized wall time per token that "
        "'tracekit capture' measures, so tokens per second and the timer's honesty cannot be checked here"
    )
    per_trace = np.bincount(s.trace, minlength=len(r.paths)) if len(s) else np.zeros(len(r.paths), np.int64)
    ones = int(np.count_nonzero(per_trace == 1))
    if ones:
        out.append(f"{ones} trace{'s hold' if ones != 1 else ' holds'} a single step: no spread within the trace")
    if len(r.devices) > 1:
        out.append(
            f"the traces come from different kinds of device ({', '.join(r.devices)}): one fit across them mixes "
            "machines; report each kind's traces apart"
        )
    if r.graph_count:
        out.append(f"{r.graph_count} kernels were replayed from CUDA/HIP graphs: classified by name alone")
    if r.unlinked_count:
        out.append(f"{r.unlinked_count} kernels have no launch in the trace: classified by name alone")
    out += r.growth.notes
    out += s.notes
    return out


def _growth_table(g: Growth) -> Table:
    rows = []
    a, o = g.attention, g.other
    if a is not None:
        rows.append(
            [
                "attention per decode step, µs per 1k KV tokens",
                f"{a.slope * 1000:.4g}{_iv(a.slope_ci95, 1000)}",
                str(a.n),
                f"{a.r2:.3f}",
            ]
        )
        rows.append(["attention per decode step at 0 KV tokens, µs", f"{a.intercept:.4g}", str(a.n), f"{a.r2:.3f}"])
        if g.at_kv is not None:
            rows.append(
                [
                    f"attention per decode step at {g.at_kv:,} KV tokens, µs",
                    f"{a.at(g.at_kv):.4g}{_iv(a.at_ci95(g.at_kv))}",
                    str(a.n),
                    "",
                ]
            )
    if o is not None:
        rows.append(
            ["the rest per step, µs per query token", f"{o.slope:.4g}{_iv(o.slope_ci95)}", str(o.n), f"{o.r2:.3f}"]
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


def sections(r: TracesReport, *, with_plots: bool = True) -> list[Section]:
    out = [Section(TITLE, [Paragraph(headline(r), label="Answer:")])]
    out.append(Section("What these traces cannot tell", [Bullets([Bullet(x) for x in limits(r)])]))
    out.append(Section("Growth across steps", [_growth_table(r.growth)]))
    if with_plots and len(r.steps):
        out.append(Section("Plots", [Plots(list(PLOTS))]))
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


# --- plots ------------------------------------------------------------------------------------------


def plot(r: TracesReport, name: str, fmt: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = r.steps
    known = np.isfinite(s.kv_tokens)
    decode = known & (s.phase == "decode")
    rest = known & ~decode
    fig, ax = plt.subplots(figsize=(7, 4))
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
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)
    return buf.getvalue()


# --- renderers ----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:12px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
p.answer{font-size:1.05em;line-height:1.45;background:#f6f8fa;border-left:4px solid #1f77b4;padding:8px 12px;overflow-wrap:anywhere}
li{overflow-wrap:anywhere}.wrap{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left;word-break:break-all}.plot svg{max-width:100%;height:auto}
"""


def to_html(r: TracesReport) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>tracekit report</title><style>{_CSS}</style></head><body>",
    ]
    for i, sec in enumerate(sections(r)):
        tag = "h1" if i == 0 else "h2"
        parts.append(f"<{tag}>{e(sec.title)}</{tag}>")
        for b in sec.blocks:
            if isinstance(b, Paragraph):
                parts.append(f'<p class="answer"><b>{e(b.label)}</b> {e(b.text)}</p>')
            elif isinstance(b, Bullets):
                items = [f"<li>{f'<b>{e(x.label)}</b> ' if x.label else ''}{e(x.text)}</li>" for x in b.items]
                parts.append("<ul>" + ("".join(items) or f"<li>{e(b.empty)}</li>") + "</ul>")
            elif isinstance(b, Table):
                head = "".join(f"<th>{e(h)}</th>" for h in b.head)
                body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows)
                parts.append(
                    f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
                )
            elif isinstance(b, Plots):
                for name in b.names:
                    svg = plot(r, name, "svg").decode("utf-8")
                    parts.append(f'<div class="plot" id="plot-{e(name)}">{svg[svg.find("<svg") :]}</div>')
    parts.append("</body></html>\n")
    return "".join(parts)


def _md(s: str) -> str:
    # Markup and links from a trace name stay text; control characters become visible escapes.
    return html.escape(printable(s), quote=False).replace("\\", "\\\\").replace("](", "]\\(")


def _md_cell(s: str) -> str:
    return _md(s).replace("|", "\\|")


def to_markdown(r: TracesReport, *, stem: str, attachments: bool = True) -> tuple[str, dict[str, bytes]]:
    """The Markdown text and its plot files (relative path -> PNG bytes)."""
    files: dict[str, bytes] = {}
    out: list[str] = []
    for i, sec in enumerate(sections(r, with_plots=attachments)):
        out += [f"{'#' if i == 0 else '##'} {_md(sec.title)}", ""]
        for b in sec.blocks:
            if isinstance(b, Paragraph):
                out.append(f"**{_md(b.label)}** {_md(b.text)}")
            elif isinstance(b, Bullets):
                out += [f"- {f'**{_md(x.label)}** ' if x.label else ''}{_md(x.text)}" for x in b.items] or [
                    f"- {b.empty}"
                ]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(_md_cell(h) for h in b.head) + " |")
                out.append("|" + "---|" * len(b.head))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            elif isinstance(b, Plots):
                for name in b.names:
                    rel = f"{stem}-plots/{name}.png"
                    files[rel] = plot(r, name, "png")
                    out.append(f"![{name}]({rel})")
            out.append("")
    return "\n".join(out), files


def to_json(r: TracesReport) -> dict[str, Any]:
    """The traces report as data (the steps and the fits), for ``--format json``."""
    return {
        "schema": "tracekit.steps-report/1",
        "headline": headline(r),
        "limits": limits(r),
        "growth": r.growth.to_json(),
        "traces": [{"path": p, "steps": r.steps.rows(i)} for i, p in enumerate(r.paths)],
        "failed": [{"path": f.path, "error": f.error} for f in r.failed],
        "advice": None if r.advice is None else advice_json(r.advice),
    }
