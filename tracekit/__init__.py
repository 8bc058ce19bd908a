"""tracekit: explain why LLM token generation slows down as the context grows.

The pipeline is visible in the package layout:

capture (torch, backends) -> trace files -> ``trace`` (fast typed loader) -> ``analysis``
(rule table, attribution, phases) -> ``report`` / ``perfetto`` (renderers) -> ``cli`` (thin).

Only ``tracekit.capture`` imports torch; everything else is pure Python.
"""

from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.attribute import Attribution, attribute
from tracekit.analysis.result import AnalysisResult
from tracekit.errors import TracekitError, UserError
from tracekit.trace.load import load_trace

__version__ = "0.1.0"

__all__ = [
    "AnalysisResult",
    "Attribution",
    "TracekitError",
    "UserError",
    "__version__",
    "analyze_trace",
    "attribute",
    "load_trace",
]
