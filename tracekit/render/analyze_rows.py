"""The rows of ``tracekit analyze``: by category, phase, step or kernel, with their distance to the
device's limits, and the CSV and JSON made of them. Plain data in, text out; nothing prints.
Every string from a trace goes out through ``sanitize.cell`` (CSV) or JSON escaping."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracekit.analysis.breakdown import merge_phases
from tracekit.analysis.kernel_id import identity
from tracekit.analysis.result import SCHEMA, AnalysisResult, PhaseResult
from tracekit.sanitize import cell, finite

if TYPE_CHECKING:
    from tracekit.analysis.growth import Growth
    from tracekit.analysis.steps import StepTable
    from tracekit.limits.steps import Limits
    from tracekit.limits.trace_facts import TraceFacts

GROUPINGS = ("category", "phase", "step", "kernel")


@dataclass
class LimitView:
    """The limits of one ``analyze`` (``--by step``/``kernel``): the roof and model facts, each
    trace's facts, and each trace's step fields, worked out once."""

    limits: Limits
    facts: list[TraceFacts | None]
    _steps: dict[int, tuple[list[dict[str, Any]], list[str]]] = field(default_factory=dict)

    def steps(self, i: int, r: AnalysisResult, table: StepTable) -> tuple[list[dict[str, Any]], list[str]]:
        """Trace ``i``'s step fields (one dict a step) and its above-peak lines."""
        if i not in self._steps:
            from tracekit.limits.steps import step_fields

            self._steps[i] = step_fields(
                table.rows(), r.phases, self.limits, self.facts[i] if i < len(self.facts) else None, trace=i
            )
        return self._steps[i]

    def kernel(self, i: int, name: str) -> dict[str, Any]:
        from tracekit.limits.steps import kernel_fields

        f = self.facts[i] if i < len(self.facts) else None
        return kernel_fields(f.kernels.get(name) if f is not None else None, self.limits.roof)


def _g(x: Any, fmt: str = "{:.3g}") -> str:
    return "" if x is None else fmt.format(x)


def _pct(x: Any) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _share_cell(fields: dict[str, Any], prefix: str) -> str:
    """A share of the roof: 'above peak' where that is impossible, never a number above 100."""
    if fields[f"{prefix}above_peak"]:
        return "above peak"
    if fields[f"{prefix}above_measured"]:
        return f"{_pct(fields[f'{prefix}peak_share'])} (of a measured floor)"
    return _pct(fields[f"{prefix}peak_share"])
FORMATS = ("table", "json", "csv")


def _phases(r: AnalysisResult, by: str) -> list[PhaseResult]:
    return r.phases if by == "step" else merge_phases(r.phases)


def phase_categories(results: list[AnalysisResult], by: str) -> list[str]:
    """The category columns of a phase or step table: every category any phase of any result has."""
    return sorted({c for r in results for p in _phases(r, by) for c in p.categories})


def rows(
    r: AnalysisResult,
    by: str,
    categories: list[str] | None = None,
    steps: StepTable | None = None,
    view: LimitView | None = None,
    index: int = 0,
    *,
    wide: bool = True,
    top: int | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one result grouped ``by`` category, phase, step or kernel. Phase and step
    rows have one column per category in ``categories`` (default: the result's own). Kernels are
    named in full when ``wide``, else by their identity (``kernel_id.identity``: the function,
    without template arguments); ``top`` keeps the first rows (longest kernels first)."""
    if by == "category":
        total = r.total_us or 1.0
        body = [
            [k, f"{v.time_us:.1f}", str(v.count), f"{100 * v.time_us / total:.1f}"]
            for k, v in sorted(r.categories.items(), key=lambda kv: -kv[1].time_us)
            if v.count
        ]
        return ["category", "time_us", "count", "percent"], body
    if by == "kernel":
        kernels = r.kernels if top is None else r.kernels[:top]
        head = ["kernel", "category", "rule", "count", "time_us"]
        body = [[k.name if wide else identity(k.name), k.category, k.rule, str(k.count), f"{k.time_us:.1f}"] for k in kernels]
        if view is not None:
            head += ["achieved_tb_s", "achieved_tflops", "peak_share_pct", "bound"]
            for k, row in zip(kernels, body):
                f = view.kernel(index, k.name)
                share = _share_cell(f, "")
                row += [_g(f["achieved_tb_s"]), _g(f["achieved_tflops"]), share, f["bound"] or ""]
        return head, body
    phases = _phases(r, by)
    cats = categories if categories is not None else phase_categories([r], by)
    if by == "step" and steps is not None:
        extra = view.steps(index, r, steps)[0] if view is not None else None
        return _step_rows(phases, steps, cats, extra)
    head = ["phase", "step", "context_tokens", "time_us", "span_us", "idle_us", *cats]
    body = [
        [
            p.phase,
            "" if p.step is None else str(p.step),
            "" if p.context_tokens is None else str(p.context_tokens),
            f"{p.time_us:.1f}",
            f"{p.span_us:.1f}",
            f"{p.idle_us:.1f}",
            *[f"{p.categories[c].time_us:.1f}" if c in p.categories else "0" for c in cats],
        ]
        for p in phases
    ]
    return head, body


def _step_rows(
    phases: list[PhaseResult], steps: StepTable, cats: list[str], extra: list[dict[str, Any]] | None = None
) -> tuple[list[str], list[list[str]]]:
    """``--by step``: the step table's columns (unknown counts blank), then each category's time,
    then (with limits) attention's and the step's achieved bandwidth against the roof."""
    head = ["phase", "step", "context_tokens", "requests", "query_tokens", "kv_tokens", "time_us"]
    head += ["attention_us", "other_us", "idle_us", "span_us", "attention_share", *cats]
    if extra is not None:
        head += ["attention_tb_s", "attention_peak_pct", "attention_bound", "step_tb_s", "step_peak_pct"]
    body = []
    for j, (p, row) in enumerate(zip(phases, steps.rows())):
        body.append(
            [
                row["phase"],
                "" if row["step"] is None else str(row["step"]),
                "" if p.context_tokens is None else str(p.context_tokens),
                *["" if row[c] is None else str(row[c]) for c in ("requests", "query_tokens", "kv_tokens")],
                f"{p.time_us:.1f}",
                *[f"{row[c]:.1f}" for c in ("attention_us", "other_us", "idle_us", "span_us")],
                "" if row["attention_share"] is None else f"{row['attention_share']:.3f}",
                *[f"{p.categories[c].time_us:.1f}" if c in p.categories else "0" for c in cats],
            ]
        )
        if extra is not None:
            x = extra[j]
            body[-1] += [
                _g(x["attention_achieved_tb_s"]),
                _share_cell(x, "attention_"),
                x["attention_bound"] or "",
                _g(x["step_achieved_tb_s"]),
                _share_cell(x, "step_"),
            ]
    return head, body


def to_csv(
    results: list[AnalysisResult],
    by: str,
    steps: list[StepTable | None] | None = None,
    view: LimitView | None = None,
    *,
    top: int | None = None,
) -> str:
    """One CSV for all results, a ``trace`` column first; phase and step columns are the union of
    every result's categories, so the columns line up whatever each trace holds."""
    cats = phase_categories(results, by) if by in ("phase", "step") else None
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i, r in enumerate(results):
        head, body = rows(r, by, cats, steps[i] if steps else None, view, i, top=top)
        if i == 0:
            w.writerow(["trace", *map(cell, head)])
        for row in body:
            w.writerow([cell(r.path), *map(cell, row)])
    return buf.getvalue()


def to_json(
    results: list[AnalysisResult],
    summary: dict[str, Any] | None = None,
    by: str = "category",
    steps: list[StepTable | None] | None = None,
    growth: Growth | None = None,
    view: LimitView | None = None,
    *,
    top: int | None = None,
) -> str:
    """The ``tracekit.analysis/1`` document; ``--by kernel`` adds each trace's kernel rows, ``--by
    step`` each trace's ``steps`` and the ``growth`` fits over all of them."""
    traces = []
    for i, r in enumerate(results):
        doc = r.to_json()
        table = steps[i] if steps else None
        if table is not None:
            doc["steps"] = table.rows()
            doc["step_notes"] = list(table.notes)
            if view is not None:
                extra, problems = view.steps(i, r, table)
                for row, x in zip(doc["steps"], extra):
                    row.update(x)
                doc["limit_findings"] = problems
        if by == "kernel":
            doc["kernels"] = [
                {
                    "name": k.name,
                    "category": k.category,
                    "rule": k.rule,
                    "count": k.count,
                    "time_us": round(k.time_us, 3),
                    **(view.kernel(i, k.name) if view is not None else {}),
                }
                for k in (r.kernels if top is None else r.kernels[:top])
            ]
        traces.append(doc)
    doc = {"schema": SCHEMA, "traces": traces}
    if view is not None:
        doc.update(view.limits.to_json())
        doc["limit_notes"] = list(view.limits.notes + view.limits.step_notes)
    if summary is not None:
        doc["summary"] = summary
    if growth is not None:
        doc["growth"] = growth.to_json()
    return json.dumps(finite(doc), indent=2, allow_nan=False)
