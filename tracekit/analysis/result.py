"""What an analysis returns: typed results, and their JSON form (``tracekit.analysis/1``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tracekit.analysis.window import Window

SCHEMA = "tracekit.analysis/1"


@dataclass
class CategoryTime:
    time_us: float = 0.0
    count: int = 0


@dataclass
class PhaseResult:
    phase: str
    step: int | None
    context_tokens: int | None
    time_us: float  # device time of its work
    span_us: float  # from the start of its host span (or first work) to the end of its last work
    busy_us: float
    idle_us: float
    start_us: float
    categories: dict[str, CategoryTime]
    # What the step's annotation says it held (None: unknown; see annotations.STEP_READERS).
    requests: int | None = None
    query_tokens: int | None = None
    kv_tokens: int | None = None
    source: str = ""  # the reader that read its annotation
    note: str | None = None  # why its annotation could not be read
    host_span: tuple[float, float] | None = None  # its annotation's host span (start, end), if it has one


@dataclass
class KernelRow:
    name: str
    category: str
    rule: str
    count: int
    time_us: float
    # Over this row's launches, in one trace; rows merged across traces keep min and max only.
    min_us: float | None = None
    max_us: float | None = None
    p50_us: float | None = None

    @property
    def mean_us(self) -> float:
        return self.time_us / self.count if self.count else 0.0


@dataclass
class AnalysisResult:
    path: str
    device: Literal["gpu", "cpu"]
    window: Window
    busy_us: float
    idle_us: float
    categories: dict[str, CategoryTime]
    phases: list[PhaseResult]
    kernels: list[KernelRow]
    kernels_by_phase: dict[str, list[KernelRow]] = field(default_factory=dict)
    # Device work whose launch is not in the trace (a previous step's tail, work launched before the
    # profiler started), and work replayed from CUDA/HIP graphs: counted in the categories too.
    unlinked_us: float = 0.0
    unlinked_count: int = 0
    graph_us: float = 0.0
    graph_count: int = 0
    partial: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader should know (not a problem)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_us(self) -> float:
        return sum(c.time_us for c in self.categories.values())

    def to_json(self) -> dict[str, Any]:
        def cats(d: dict[str, CategoryTime]) -> dict[str, Any]:
            return {k: {"time_us": round(v.time_us, 3), "count": v.count} for k, v in d.items()}

        out: dict[str, Any] = {
            "path": self.path,
            "device": self.device,
            "window": {
                "name": self.window.name,
                "start_us": self.window.start_us,
                "dur_us": round(self.window.dur_us, 3),
                "source": self.window.source,
            },
            "busy_us": round(self.busy_us, 3),
            "idle_us": round(self.idle_us, 3),
            "categories": cats(self.categories),
            "unlinked_us": round(self.unlinked_us, 3),
            "unlinked_count": self.unlinked_count,
            "graph_us": round(self.graph_us, 3),
            "graph_count": self.graph_count,
            "phases": [
                {
                    "phase": p.phase,
                    "step": p.step,
                    "context_tokens": p.context_tokens,
                    "time_us": round(p.time_us, 3),
                    "span_us": round(p.span_us, 3),
                    "busy_us": round(p.busy_us, 3),
                    "idle_us": round(p.idle_us, 3),
                    "categories": cats(p.categories),
                }
                for p in self.phases
            ],
            "partial": self.partial,
        }
        if self.extra:
            out.update(self.extra)
        return out


def summed_rows(results: Iterable[AnalysisResult]) -> tuple[dict[str, CategoryTime], list[KernelRow]]:
    """The categories and kernel rows of several results, summed: categories in the order first
    seen, kernel rows longest first (a merged row keeps the least min and the greatest max; a
    median does not merge)."""
    cats: dict[str, CategoryTime] = {}
    kernels: dict[tuple[str, str, str], KernelRow] = {}
    for r in results:
        for name, c in r.categories.items():
            m = cats.setdefault(name, CategoryTime())
            m.time_us += c.time_us
            m.count += c.count
        for k in r.kernels:
            row = kernels.setdefault((k.name, k.category, k.rule), KernelRow(k.name, k.category, k.rule, 0, 0.0))
            row.count += k.count
            row.time_us += k.time_us
            row.min_us = _fold(min, row.min_us, k.min_us)
            row.max_us = _fold(max, row.max_us, k.max_us)
    return cats, sorted(kernels.values(), key=lambda k: -k.time_us)


def _fold(pick: Callable[[float, float], float], a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else pick(a, b)
