"""Renderers: the same ReportData as Markdown, self-contained HTML, or JSON."""

from __future__ import annotations

import html
import json
from pathlib import Path

from tracekit.fsutil import write_bytes_atomic, write_text_atomic
from tracekit.report import plots
from tracekit.report.data import ContextFigures, ReportData, to_json


def _f(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


COLUMNS: tuple[tuple[str, str], ...] = (
    ("context", "context tokens"),
    ("prefill", "prefill s (sync)"),
    ("prefill_unsync", "prefill s (no sync)"),
    ("prefill_tps", "prefill tok/s"),
    ("decode_ms", "decode ms/token (median)"),
    ("tps", "tokens/s"),
    ("attn_ms", "attention ms/token"),
    ("attn_share", "attention share"),
    ("idle", "idle share"),
    ("bound", "bound ms/token"),
    ("overhead", "profiler overhead"),
)


def row_cells(c: ContextFigures) -> list[str]:
    if c.status != "ok":
        return [str(c.context_tokens), f"failed: {c.error or ''}"] + [""] * (len(COLUMNS) - 2)
    return [
        str(c.context_tokens),
        _f(c.prefill_s),
        _f(c.prefill_s_unsynced),
        _f(c.prefill_tokens_per_s, "{:,.0f}"),
        _f(c.decode_ms_per_token),
        _f(c.tokens_per_s, "{:.1f}"),
        _f(c.attention_ms_per_token),
        _pct(c.attention_share),
        _pct(c.idle_share),
        _f(c.bound_ms_per_token),
        _f(c.profiler_overhead, "{:.2f}x"),
    ]


def _summary_lines(d: ReportData) -> list[str]:
    m = d.model
    lines = [
        f"Run: {d.run}",
        f"Model: {m.get('name', '?')} · {m.get('layers')} layers · {m.get('heads')} heads / {m.get('kv_heads')} KV heads "
        f"· head dim {m.get('head_dim')} · {m.get('dtype')} · {int(m.get('parameter_bytes') or 0) / 1e6:,.1f} MB of weights"
        f" · attention: {m.get('attn', '?')}",
        f"Device: {d.device.get('name', '?')} ({d.device.get('kind', '?')}); peak bandwidth "
        f"{_f(d.bandwidth_gbps, '{:,.1f}')} GB/s, {d.bandwidth_source}",
    ]
    return lines


def _category_rows(d: ReportData) -> tuple[list[str], list[list[str]]]:
    ok = [c for c in d.ok_contexts() if c.categories_ms_per_token]
    cats = sorted(
        {k for c in ok for k in c.categories_ms_per_token},
        key=lambda k: list(plots.COLORS).index(k) if k in plots.COLORS else 99,
    )
    head = ["context tokens", *cats]
    rows = [[str(c.context_tokens), *[_f(c.categories_ms_per_token.get(k)) for k in cats]] for c in ok]
    return head, rows


def render_markdown(d: ReportData, images: dict[str, str]) -> str:
    """Markdown with ``images`` (plot name -> relative path of a PNG) embedded."""
    out = ["# tracekit report: decode cost against context", ""]
    out += [f"- {line}" for line in _summary_lines(d)] + [""]
    out += ["## Findings", ""]
    out += [f"- **{f.severity}** ({f.kind}): {f.message}" for f in d.findings] or ["- none"]
    out += ["", "## Per context", ""]
    out.append("| " + " | ".join(h for _, h in COLUMNS) + " |")
    out.append("|" + "---|" * len(COLUMNS))
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row_cells(ctx)) + " |" for ctx in d.contexts]
    head, rows = _category_rows(d)
    if rows:
        out += ["", "## ms per decoded token, by category", ""]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        out += ["| " + " | ".join(r) + " |" for r in rows]
    if d.fits:
        out += ["", "## Growth with context (least squares: ms/token = a + b·context)", ""]
        out.append("| part | a (ms) | b (ms per 1k tokens) | R² |")
        out.append("|---|---|---|---|")
        for k, f in d.fits.items():
            out.append(f"| {k} | {f.intercept:.4g} | {f.slope * 1000:.4g} | {f.r2:.4f} |")
    if images:
        out += ["", "## Plots", ""]
        out += [f"![{name}]({path})" for name, path in images.items()]
    out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:12px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
.wrap{overflow-x:auto}table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}th{background:#f3f3f3}
td:first-child,th:first-child,td.t{text-align:left}td.t{white-space:normal;word-break:break-all;min-width:8em}
.f-error{color:#a00}.f-warning{color:#a60}.f-info{color:#225}
.plot svg,.plot img{max-width:100%;height:auto}
code{font-size:.85em;word-break:break-all}
"""


def _cell(x: str) -> str:
    numeric = x.replace(",", "").replace(".", "", 1).replace("%", "").replace("x", "").replace("-", "", 1).isdigit()
    return f"<td>{html.escape(x)}</td>" if numeric or x == "n/a" else f'<td class="t">{html.escape(x)}</td>'


def _table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    h = "".join(f"<th>{e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(_cell(x) for x in r) + "</tr>" for r in rows)
    return f'<div class="wrap"><table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table></div>'


def render_html(d: ReportData, svgs: dict[str, bytes]) -> str:
    """One self-contained page: inline SVG plots, no network, every trace string escaped."""
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        "<title>tracekit report</title><style>",
        _CSS,
        "</style></head><body>",
        "<h1>tracekit report: decode cost against context</h1><ul>",
        *[f"<li>{e(line)}</li>" for line in _summary_lines(d)],
        "</ul><h2>Findings</h2><ul>",
        *[
            f'<li class="f-{e(f.severity)}"><b>{e(f.severity)}</b> ({e(f.kind)}): {e(f.message)}</li>'
            for f in d.findings
        ],
        "</ul><h2>Per context</h2>",
        _table([h for _, h in COLUMNS], [row_cells(c) for c in d.contexts]),
    ]
    head, rows = _category_rows(d)
    if rows:
        parts += ["<h2>ms per decoded token, by category</h2>", _table(head, rows)]
    if d.fits:
        parts += [
            "<h2>Growth with context</h2>",
            _table(
                ["part", "a (ms)", "b (ms per 1k tokens)", "R²"],
                [[k, f"{f.intercept:.4g}", f"{f.slope * 1000:.4g}", f"{f.r2:.4f}"] for k, f in d.fits.items()],
            ),
        ]
    kern = [(c.context_tokens, n, t) for c in d.ok_contexts() for n, t in c.top_attention_kernels]
    if kern:
        parts += [
            "<h2>Attention kernels and ops (per decode step)</h2>",
            _table(["context", "name", "µs per step"], [[str(c), n, f"{t:.1f}"] for c, n, t in kern]),
        ]
    ok = d.ok_contexts()
    if ok and ok[-1].top_kernels:
        c = ok[-1]
        parts += [
            f"<h2>Largest device work in the context-{c.context_tokens} trace (all phases)</h2>",
            _table(
                ["kernel / op", "category", "rule", "count", "µs"],
                [[n, cat, rule, str(cnt), f"{us:.1f}"] for n, cat, rule, cnt, us in c.top_kernels],
            ),
        ]
    parts.append("<h2>Plots</h2>")
    for name, svg in svgs.items():
        text = svg.decode("utf-8")
        start = text.find("<svg")
        parts.append(f'<div class="plot" id="plot-{e(name)}">{text[start:]}</div>')
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(d: ReportData, fmt: str, out: Path) -> list[Path]:
    """Write the report in ``fmt`` to ``out``; return every file written."""
    if fmt == "json":
        write_text_atomic(out, json.dumps(to_json(d), indent=2) + "\n")
        return [out]
    if fmt == "html":
        write_text_atomic(out, render_html(d, plots.render(d, "svg")))
        return [out]
    if fmt == "md":
        pngs = plots.render(d, "png")
        img_dir = out.parent / f"{out.stem}-plots"
        img_dir.mkdir(parents=True, exist_ok=True)
        images = {}
        written = []
        for name, data in pngs.items():
            p = img_dir / f"{name}.png"
            write_bytes_atomic(p, data)
            written.append(p)
            images[name] = f"{img_dir.name}/{p.name}"
        write_text_atomic(out, render_markdown(d, images))
        return [out, *written]
    raise ValueError(fmt)


__all__ = ["render_html", "render_markdown", "write_report"]
