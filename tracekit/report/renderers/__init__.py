"""Report renderers, one module per format. A new format is one module (``EXTENSION`` and
``render``, see ``base.Renderer``) and one line in ``RENDERERS``."""

from __future__ import annotations

from pathlib import Path

from tracekit.files import write_files_atomic
from tracekit.outputs import claim_output, record_outputs
from tracekit.report.model import ReportData
from tracekit.report.renderers import htmlreport, jsonreport, markdown
from tracekit.report.renderers.base import Output, Renderer, WritesFiles

RENDERERS: dict[str, Renderer] = {"md": markdown, "html": htmlreport, "json": jsonreport}


def render(data: ReportData, fmt: str) -> Output:
    """The report in ``fmt`` as one document that refers to no other file (for stdout)."""
    return RENDERERS[fmt].render(data)


def write_report(data: ReportData, fmt: str, out: Path, *, force: bool = False) -> list[Path]:
    """Write the report in ``fmt`` to ``out`` (its attachments beside it) as one atomic set;
    return every file written. The report and its attachments pass the output policy
    (``claim_output``) and are recorded as tracekit's own once written."""
    renderer = RENDERERS[fmt]
    rendered = renderer.render_files(data, out.stem) if isinstance(renderer, WritesFiles) else renderer.render(data)
    claim_output(out, force=force, attachments=rendered.attachments)
    files = {out.parent / rel: content for rel, content in rendered.attachments.items()}
    files[out] = rendered.text.encode("utf-8")
    write_files_atomic(files)
    record_outputs(files)
    return [out, *(p for p in files if p != out)]


__all__ = ["RENDERERS", "Output", "Renderer", "render", "write_report"]
