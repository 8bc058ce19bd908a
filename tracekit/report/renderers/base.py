"""What a report renderer is: a module with ``EXTENSION`` and ``render(data)``; one that writes
files beside the report (Markdown's plots) also has ``render_files(data, stem)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tracekit.report.model import ReportData


@dataclass
class Output:
    """A rendered report: the main file's text, and files it refers to (path relative to it -> bytes)."""

    text: str
    attachments: dict[str, bytes] = field(default_factory=dict)


class Renderer(Protocol):
    EXTENSION: str

    def render(self, data: ReportData) -> Output:
        """Render ``data`` as one document that refers to no other file (also what stdout gets)."""
        ...


@runtime_checkable
class WritesFiles(Protocol):
    def render_files(self, data: ReportData, stem: str) -> Output:
        """Render ``data`` as ``<stem>.<EXTENSION>`` with files beside it, named after ``stem``."""
        ...
