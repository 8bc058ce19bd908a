"""The report as Markdown, with the plots as PNG files beside it (``<stem>-plots/``).

Every piece of text is HTML-escaped as in the HTML report (trace names can carry markup), with
link brackets and control characters escaped too, and table cells escape ``|``."""

from __future__ import annotations

import html
from collections.abc import Callable

from tracekit.report import plots
from tracekit.report.headline import split
from tracekit.report.model import ReportData
from tracekit.report.renderers.base import Output
from tracekit.report.sections import Answer, Block, Bullets, Paragraph, Plots, Section, Table, sections
from tracekit.sanitize import printable

EXTENSION = "md"


def _text(s: str) -> str:
    # Markup, links and images from a trace name stay text (an image would be fetched when the
    # report is viewed: "](" is what makes one); control characters become visible escapes.
    return html.escape(printable(s), quote=False).replace("\\", "\\\\").replace("](", "]\\(")


def _cell(s: str) -> str:
    return _text(s).replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in t.head) + " |", "|" + "---|" * len(t.head)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return out


def _bullets(b: Bullets) -> list[str]:
    if not b.items:
        return [f"- {b.empty}"]
    out = []
    for item in b.items:
        lead = f"**{_text(item.label)}** " if item.label else ""
        tag = f"({_text(item.tag)}): " if item.tag else ""
        out.append(f"- {lead}{tag}{_text(item.text)}")
    return out


def _block(block: Block) -> list[str]:
    if isinstance(block, Answer):
        out = []
        for line in block.lines:
            lead, rest = split(line)
            out += [f"**{_text(lead)}** {_text(rest)}" if lead else _text(rest), ""]
        return out[:-1]
    if isinstance(block, Paragraph):
        lead = f"**{_text(block.label)}** " if block.label else ""
        return [f"{lead}{_text(block.text)}"]
    if isinstance(block, Bullets):
        return _bullets(block)
    if isinstance(block, Table):
        return _table(block)
    return []


def render_sections(secs: list[Section], plot: Callable[[Plots], list[str]] | None = None) -> str:
    """Sections as Markdown (the first one's title as the page's heading); ``plot`` draws a plots block."""
    out: list[str] = []
    for i, sec in enumerate(secs):
        out += [f"{'#' if i == 0 else '##'} {_text(sec.title)}", ""]
        for block in sec.blocks:
            out += plot(block) if isinstance(block, Plots) and plot is not None else _block(block)
            out.append("")
    return "\n".join(out)


def section(sec: Section, level: str = "##") -> str:
    """One section on its own, without plots (``tracekit advise --format md``)."""
    out = [f"{level} {_text(sec.title)}", ""]
    for block in sec.blocks:
        if not isinstance(block, Plots):
            out += [*_block(block), ""]
    return "\n".join(out)


def render(data: ReportData) -> Output:
    """The report as one Markdown document, with no plots (nothing beside it to refer to)."""
    return _render(data, None)


def render_files(data: ReportData, stem: str) -> Output:
    """The report as ``<stem>.md`` with its plots as PNG files in ``<stem>-plots/``."""
    return _render(data, stem)


def _render(data: ReportData, stem: str | None) -> Output:
    files: dict[str, bytes] = {}

    def plot(block: Plots) -> list[str]:
        out = []
        for name, png in plots.render(data.facts, "png", block.names).items():
            rel = f"{stem}-plots/{name}.png"
            files[rel] = png
            out.append(f"![{name}]({rel})")
        return out

    return Output(render_sections(sections(data, with_plots=stem is not None), plot), files)
