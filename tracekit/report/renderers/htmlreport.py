"""The report as one self-contained HTML page: inline SVG plots, no network, every string escaped."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from tracekit.report import plots
from tracekit.report.headline import split
from tracekit.report.model import ReportData
from tracekit.report.renderers.base import Output
from tracekit.report.sections import Answer, Bullets, Paragraph, Plots, Section, Table, sections
from tracekit.sanitize import printable

EXTENSION = "html"

# Fits a 1280-px window: the page is at most 1200 px wide, headers and interval cells wrap at
# spaces, names break anywhere; .wrap scrolls a table sideways only in a narrower window.
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:12px;color:#222;box-sizing:border-box}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
div.answer{font-size:1.05em;line-height:1.45;margin:1em 0;background:#f6f8fa;border-left:4px solid #1f77b4;padding:8px 12px;overflow-wrap:anywhere}
li{overflow-wrap:anywhere}
.wrap{overflow-x:auto;max-width:100%}table{border-collapse:collapse;font-size:.85em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:normal}th{background:#f3f3f3}
td i{font-style:normal;color:#666;white-space:nowrap}
td:first-child,th:first-child,td.t{text-align:left}td.t{word-break:break-all;min-width:8em}
.f-error{color:#a00}.f-warning{color:#a60}.f-info{color:#225}
.plot svg,.plot img{max-width:100%;height:auto}
code{font-size:.85em;word-break:break-all}
"""


def e(text: str) -> str:
    """Text for HTML: the escaping policy's ``printable`` first (a device name's ESC, BEL or
    U+202E reached the page raw), then HTML's own escaping."""
    return html.escape(printable(str(text)))


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?[%x]?$")


def _cell(x: str) -> str:
    """A number (right-aligned; its interval, `` [lo–hi]``, dimmed and free to wrap below it) or text."""
    value, sep, rest = x.partition(" [")
    if _NUMBER.match(value) or value == "n/a":
        tail = f" <i>[{e(rest)}</i>" if sep else ""
        return f'<td class="n">{e(value)}{tail}</td>'
    return f'<td class="t">{e(x)}</td>'


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
    for name, svg in plots.render(data.facts, "svg", p.names).items():
        text = svg.decode("utf-8")
        parts.append(f'<div class="plot" id="plot-{e(name)}">{text[text.find("<svg") :]}</div>')
    return "".join(parts)


def render_sections(secs: list[Section], title: str, plot: Callable[[Plots], str] | None = None) -> str:
    """Sections as one HTML page (the first one's title as its heading); ``plot`` draws a plots block."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>{e(title)}</title><style>",
        _CSS,
        "</style></head><body>",
    ]
    for i, sec in enumerate(secs):
        tag = "h1" if i == 0 else "h2"
        parts.append(f"<{tag}>{e(sec.title)}</{tag}>")
        for block in sec.blocks:
            if isinstance(block, Answer):
                lines = []
                for line in block.lines:
                    lead, rest = split(line)
                    lines.append(f"<p>{f'<b>{e(lead)}</b> ' if lead else ''}{e(rest)}</p>")
                parts.append(f'<div class="answer">{"".join(lines)}</div>')
            elif isinstance(block, Paragraph):
                lead = f"<b>{e(block.label)}</b> " if block.label else ""
                parts.append(f"<p>{lead}{e(block.text)}</p>")
            elif isinstance(block, Bullets):
                parts.append(_bullets(block))
            elif isinstance(block, Table):
                parts.append(_table(block))
            elif isinstance(block, Plots) and plot is not None:
                parts.append(plot(block))
    parts.append("</body></html>\n")
    return "".join(parts)


def render(data: ReportData) -> Output:
    return Output(render_sections(sections(data), "tracekit report", lambda p: _plots(data, p)))
