"""Report renderers, one module per format. A new format is one module (``EXTENSION`` and
``render``, see ``base.Renderer``) and one line in ``RENDERERS``."""

from __future__ import annotations

from pathlib import Path

from tracekit.fsutil import write_bytes_atomic, write_text_atomic
from tracekit.report.model import ReportData
from tracekit.report.renderers import html, json, md
from tracekit.report.renderers.base import Output, Renderer

RENDERERS: dict[str, Renderer] = {"md": md, "html": html, "json": json}


def render(data: ReportData, fmt: str, *, stem: str = "report", attachments: bool = True) -> Output:
    return RENDERERS[fmt].render(data, stem=stem, attachments=attachments)


def write_report(data: ReportData, fmt: str, out: Path) -> list[Path]:
    """Write the report in ``fmt`` to ``out`` (its attachments beside it); return every file written."""
    rendered = render(data, fmt, stem=out.stem)
    written = []
    for rel, content in rendered.attachments.items():
        p = out.parent / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(p, content)
        written.append(p)
    write_text_atomic(out, rendered.text)
    return [out, *written]


__all__ = ["RENDERERS", "Output", "Renderer", "render", "write_report"]
