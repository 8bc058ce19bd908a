"""The report as one self-contained HTML page: inline SVG plots, no network, every string escaped."""

from __future__ import annotations

import html

from tracekit.report import plots
from tracekit.report.model import ReportData
from tracekit.report.renderers.base import Output
from tracekit.report.sections import Bullets, Plots, Table, sections

EXTENSION = "html"

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

e = html.escape


def _cell(x: str) -> str:
    numeric = x.replace(",", "").replace(".", "", 1).replace("%", "").replace("x", "").replace("-", "", 1).isdigit()
    return f"<td>{e(x)}</td>" if numeric or x == "n/a" else f'<td class="t">{e(x)}</td>'


def _table(t: Table) -> str:
    h = "".join(f"<th>{e(x)}</th>" for x in t.head)
    body = "".join("<tr>" + "".join(_cell(x) for x in r) + "</tr>" for r in t.rows)
    return f'<div class="wrap"><table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table></div>'


def _bullets(b: Bullets) -> str:
    if not b.items:
        return f"<ul><li>{e(b.empty)}</li></ul>"
    items = []
    for it in b.items:
        css = f' class="f-{e(it.label)}"' if it.label else ""
        lead = f"<b>{e(it.label)}</b> " if it.label else ""
        tag = f"({e(it.tag)}): " if it.tag else ""
        items.append(f"<li{css}>{lead}{tag}{e(it.text)}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _plots(data: ReportData, p: Plots) -> str:
    parts = []
    for name, svg in plots.render(data, "svg", p.names).items():
        text = svg.decode("utf-8")
        parts.append(f'<div class="plot" id="plot-{e(name)}">{text[text.find("<svg") :]}</div>')
    return "".join(parts)


def render(data: ReportData, *, stem: str = "report", attachments: bool = True) -> Output:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        "<title>tracekit report</title><style>",
        _CSS,
        "</style></head><body>",
    ]
    for i, sec in enumerate(sections(data)):
        tag = "h1" if i == 0 else "h2"
        parts.append(f"<{tag}>{e(sec.title)}</{tag}>")
        for block in sec.blocks:
            if isinstance(block, Bullets):
                parts.append(_bullets(block))
            elif isinstance(block, Table):
                parts.append(_table(block))
            elif isinstance(block, Plots):
                parts.append(_plots(data, block))
    parts.append("</body></html>\n")
    return Output("".join(parts))
