"""The report of any traces (not a capture run): from their steps, what attention costs against context.

Built from the per-trace partials (``fleet.task``: the step table of each trace, its categories)
and the growth fits over all steps (``analysis.growth``): the report's data, the headline and what
the traces cannot tell, in words, and the JSON document. Its sections and its Markdown and HTML
pages are in ``report.traces_sections``, its plots in ``report.traces_plots``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tracekit.advice import AdviceSet, Plan, advise_steps
from tracekit.advice.document import to_json as advice_json
from tracekit.analysis.growth import Growth, growth
from tracekit.analysis.steps import StepTable, concat
from tracekit.fleet.merge import Summary, summarize
from tracekit.fleet.task import Failure, TracePartial
from tracekit.limits.roofline import bandwidth_gbs
from tracekit.limits.steps import Limits, step_fields


@dataclass
class TracesReport:
    paths: list[str]
    steps: StepTable
    growth: Growth
    summary: Summary
    failed: list[Failure] = field(default_factory=list)
    graph_count: int = 0
    unlinked_count: int = 0
    devices: list[str] = field(default_factory=list)
    advice: AdviceSet | None = None  # "What would help" (``tracekit.advise``), tracekit's default plan
    # How far from the hardware limit (``limits.steps``): the roof and model facts, each step's
    # limit fields in ``steps`` order, and the truth check's lines.
    limits: Limits | None = None
    limit_rows: list[dict[str, Any]] = field(default_factory=list)
    limit_findings: list[str] = field(default_factory=list)


def build(
    partials: list[TracePartial], failed: list[Failure], at_kv: int | None = None, limits: Limits | None = None
) -> TracesReport:
    tables = [p.steps for p in partials if p.steps is not None]
    steps = concat(tables)
    rows: list[dict[str, Any]] = []
    found: list[str] = []
    if limits is not None:
        for i, p in enumerate(partials):
            if p.steps is not None:
                extra, problems = step_fields(p.steps.rows(), p.result.phases, limits, p.facts, trace=i)
                rows += extra
                found += [f"{p.result.path}: {line}" for line in problems]
    return TracesReport(
        paths=[p.result.path for p in partials],
        steps=steps,
        growth=growth(steps, at_kv),
        summary=summarize(partials, failed),
        failed=list(failed),
        graph_count=sum(p.result.graph_count for p in partials),
        unlinked_count=sum(p.result.unlinked_count for p in partials),
        devices=sorted({p.result.device for p in partials}),
        limits=limits,
        limit_rows=rows,
        limit_findings=found,
        advice=advise_steps(
            steps,
            Plan(),
            shape=None if limits is None else limits.shape,
            roof=None if limits is None else limits.roof,
            roof_source="" if limits is None else limits.roof_source,
            what=f"{len(partials)} trace{'s' if len(partials) != 1 else ''}",
        ),
    )


def _us(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def iv_text(iv: tuple[float, float] | None, scale: float = 1.0) -> str:
    return "" if iv is None else f" [{_us(iv[0] * scale)} to {_us(iv[1] * scale)}]"


def headline(r: TracesReport) -> str:
    """The answer in one paragraph: how attention per decode step grew with KV tokens, or why it cannot be said."""
    s, g, a = r.steps, r.growth, r.growth.attention
    n_traces = len(r.paths)
    lead = f"{len(s)} steps in {n_traces} trace{'s' if n_traces != 1 else ''}"
    if a is None:
        why = g.notes[0] if g.notes else "no fit"
        share = _share_text(s)
        return f"{lead}: attention against KV tokens cannot be fitted ({why}).{share}{distance_text(r)}"
    lo_kv, hi_kv = a.x_min, a.x_max
    text = (
        f"From {lo_kv:,.0f} to {hi_kv:,.0f} KV tokens per decode step, the least-squares line of attention goes "
        f"from {_us(a.at(lo_kv))} to {_us(a.at(hi_kv))} µs per step: {_us(a.slope * 1000)} µs per 1,000 KV tokens"
        f"{iv_text(a.slope_ci95, 1000)} (95% interval over {a.n} decode steps, R² {a.r2:.2f})"
    )
    if not a.conclusive:
        text += "; the interval includes zero, so growth is inconclusive"
    if g.at_kv is not None:
        text += f"; at {g.at_kv:,} KV tokens the fit predicts {_us(a.at(g.at_kv))}{iv_text(a.at_ci95(g.at_kv))} µs per step"
    return f"{text}.{_share_text(s)}{distance_text(r)} ({lead}.)"


def distance_text(r: TracesReport) -> str:
    """How far attention was from the memory limit, at the decode step with the most KV tokens
    (or the step with the most, when none decodes); "" without a roof or model facts."""
    lim = r.limits
    # Traces of several devices share one roof only in the limits section (which says so): the
    # headline names no device's peak for a step another device ran.
    if lim is None or lim.roof is None or lim.mixed_devices or not r.limit_rows:
        return ""
    s = r.steps
    best = -1
    for i, row in enumerate(r.limit_rows):
        if row.get("attention_achieved_tb_s") is None:
            continue
        key = (s.phase[i] == "decode", s.kv_tokens[i])
        if best < 0 or key > (s.phase[best] == "decode", s.kv_tokens[best]):
            best = i
    if best < 0:
        return ""
    row = r.limit_rows[best]
    roof = lim.roof
    what = "decode step" if s.phase[best] == "decode" else f"{s.phase[best]} step"
    peak = (
        f"the {roof.name}'s {bandwidth_gbs(roof.bandwidth_tb_s)}"
        if not roof.measured
        else (f"the {bandwidth_gbs(roof.bandwidth_tb_s)} measured")
    )
    if row["attention_above_peak"]:
        share = f"above {peak}, which is impossible (see the findings)"
    else:
        share = f"{100 * row['attention_peak_share']:.0f}% of the roof ({peak}; {row['attention_bound']}-bound)"
    return (
        f" In the {what} with {int(s.kv_tokens[best]):,} KV tokens, attention read the KV cache at "
        f"{bandwidth_gbs(row['attention_achieved_tb_s'])}, {share}."
    )


def _share_text(s: StepTable) -> str:
    decode = (s.phase == "decode") & np.isfinite(s.attention_share)
    if not decode.any():
        return ""
    att, other = float(s.attention_us[decode].sum()), float(s.other_us[decode].sum())
    return f" Attention was {100 * att / (att + other):.1f}% of decode steps' device time." if att + other > 0 else ""


def limits(r: TracesReport) -> list[str]:
    """What these traces cannot tell, said rather than guessed."""
    s = r.steps
    out = []
    if not len(s):
        out.append("the traces hold no steps: no per-step figures")
    unknown = int(np.count_nonzero(np.isnan(s.kv_tokens)))
    if unknown:
        out.append(f"{unknown} of {len(s)} steps have no KV length (context unknown): they are left out of the fit")
    out.append(
        "no synchronization check: a trace records device time, not the synchronized wall time per token that "
        "'tracekit capture' measures, so tokens per second and the timer's honesty cannot be checked here"
    )
    per_trace = np.bincount(s.trace, minlength=len(r.paths)) if len(s) else np.zeros(len(r.paths), np.int64)
    ones = int(np.count_nonzero(per_trace == 1))
    if ones:
        out.append(f"{ones} trace{'s hold' if ones != 1 else ' holds'} a single step: no spread within the trace")
    if len(r.devices) > 1:
        out.append(
            f"the traces come from different kinds of device ({', '.join(r.devices)}): one fit across them mixes "
            "machines; report each kind's traces apart"
        )
    if r.graph_count:
        out.append(f"{r.graph_count} kernels were replayed from CUDA/HIP graphs: classified by name alone")
    if r.unlinked_count:
        out.append(f"{r.unlinked_count} kernels have no launch in the trace: classified by name alone")
    out += r.growth.notes
    out += s.notes
    return out


def to_json(r: TracesReport) -> dict[str, Any]:
    """The traces report as data (the steps and the fits), for ``--format json``."""
    return {
        "schema": "tracekit.steps-report/1",
        "headline": headline(r),
        "limits": limits(r),
        "growth": r.growth.to_json(),
        "traces": [{"path": p, "steps": _rows(r, i)} for i, p in enumerate(r.paths)],
        "failed": [{"path": f.path, "error": f.error} for f in r.failed],
        **(r.limits.to_json() if r.limits is not None else {}),
        "limit_findings": list(r.limit_findings),
        "advice": None if r.advice is None else advice_json(r.advice),
    }


def _rows(r: TracesReport, trace: int) -> list[dict[str, Any]]:
    """One trace's step rows, with their limit fields where the report has them."""
    rows = r.steps.rows(trace)
    if r.limit_rows:
        idx = np.flatnonzero(r.steps.trace == trace).tolist()
        for row, i in zip(rows, idx):
            row.update(r.limit_rows[i])
    return rows
