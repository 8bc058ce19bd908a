"""tracekit: explain why LLM token generation slows down as the context grows.

The pipeline is visible in the package layout (see ARCHITECTURE.md):

capture (torch, backends) -> trace files -> ``trace`` (fast typed loader) -> ``analysis``
(one attribution, small analyses) -> ``fleet`` (many traces) -> ``report`` (the run report) /
``render`` (analyze's tables) / ``perfetto`` -> ``cli`` (thin).

Only ``tracekit.capture`` imports torch; everything else is pure Python. The names below load on
first use, so ``import tracekit`` (and every command's start-up) stays cheap.
"""

# No ``from __future__ import annotations`` here: it would bind the name ``annotations`` in this
# package and shadow the submodule ``tracekit.annotations``.
import importlib
from typing import TYPE_CHECKING, Any

from tracekit.errors import TracekitError, UserError

if TYPE_CHECKING:
    from tracekit.analysis.analyze import analyze_trace
    from tracekit.analysis.attribute import Attribution, attribute
    from tracekit.analysis.result import AnalysisResult
    from tracekit.api.advise import Advice, advise
    from tracekit.api.analysis import Analysis, analyze
    from tracekit.api.run import Run, load_run
    from tracekit.api.table import Table
    from tracekit.trace.read import ReadOptions, load_trace

__version__ = "0.1.0"

_LAZY = {
    "Advice": "tracekit.api.advise",
    "advise": "tracekit.api.advise",
    "Analysis": "tracekit.api.analysis",
    "Run": "tracekit.api.run",
    "Table": "tracekit.api.table",
    "analyze": "tracekit.api.analysis",
    "load_run": "tracekit.api.run",
    "AnalysisResult": "tracekit.analysis.result",
    "Attribution": "tracekit.analysis.attribute",
    "analyze_trace": "tracekit.analysis.analyze",
    "attribute": "tracekit.analysis.attribute",
    "load_trace": "tracekit.trace.read",
    "ReadOptions": "tracekit.trace.read",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracekit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


# The public API (docs/python.md); every other name is private and may change.
__all__ = [
    "Advice",
    "Analysis",
    "AnalysisResult",
    "Attribution",
    "ReadOptions",
    "TracekitError",
    "Run",
    "Table",
    "UserError",
    "__version__",
    "advise",
    "analyze",
    "analyze_trace",
    "attribute",
    "load_run",
    "load_trace",
]
