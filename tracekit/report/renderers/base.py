"""What a report renderer is: a module with ``EXTENSION`` and ``render(data, *, stem, attachments)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tracekit.report.model import ReportData


@dataclass
class Output:
    """A rendered report: the main file's text, and files it refers to (path relative to it -> bytes)."""

    text: str
    attachments: dict[str, bytes] = field(default_factory=dict)


class Renderer(Protocol):
    EXTENSION: str

    def render(self, data: ReportData, *, stem: str = "report", attachments: bool = True) -> Output:
        """Render ``data``; ``stem`` is the main file's name without extension (attachments are
        named after it); with ``attachments`` False, refer to no other file (for stdout)."""
        ...
