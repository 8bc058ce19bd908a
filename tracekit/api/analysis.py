"""``tracekit.analyze``: the command line's ``analyze`` as a Python call that returns tables.

It runs the same task the command runs (``fleet.task.analyze_file``) over the same inputs (files,
folders, globs), in this process or on Dask exactly as ``tracekit analyze`` decides, so a
DataFrame and ``analyze --format json`` come from one computation.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from os import PathLike
from pathlib import Path
from typing import Any

from tracekit.analysis.growth import Growth, growth
from tracekit.analysis.kernel_id import identity
from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.steps import StepTable, concat
from tracekit.api.columns import (
    CATEGORY_KINDS,
    KERNEL_KINDS,
    LIMIT_KERNEL_KINDS,
    LIMIT_STEP_KINDS,
    PHASE_KINDS,
    RANK_KINDS,
    STEP_KINDS,
)
from tracekit.api.table import Table
from tracekit.errors import UserError
from tracekit.fleet.merge import Summary, summarize
from tracekit.fleet.plan import Outcome, Plan
from tracekit.fleet.task import Failure, TaskOptions, TracePartial
from tracekit.limits.steps import Limits
from tracekit.sanitize import printable
from tracekit.trace.model import Trace
from tracekit.trace.read import ReadOptions

Paths = str | PathLike[str] | Trace | Iterable[str | PathLike[str] | Trace]


@dataclass
class Analysis:
    """What ``analyze`` found in one or more traces: the per-trace results, the summary over them
    and the failed traces. Tables: ``categories``, ``kernels``, ``phases``, ``ranks``,
    ``launches``; ``to_json()`` is ``analyze --format json``; ``plot`` draws figures."""

    paths: list[str]
    window: str | None
    by: str
    partials: list[TracePartial]
    failed: list[Failure]
    summary: Summary
    interrupted: bool = False
    read: ReadOptions = field(default_factory=ReadOptions)
    _traces: dict[str, Trace] = field(default_factory=dict, repr=False)

    @property
    def results(self) -> list[AnalysisResult]:
        return [p.result for p in self.partials]

    @property
    def categories(self) -> Table:
        """Device time and item count per category, one row per trace and category."""
        rows = [
            {"trace": p.result.path, "rank": p.rank, "category": name, "time_us": c.time_us, "count": c.count}
            for p in self.partials
            for name, c in p.result.categories.items()
        ]
        return Table.from_rows("categories", CATEGORY_KINDS, rows)

    @property
    def kernels(self) -> Table:
        """Every kernel (by name, category and rule) of every trace: total, count, mean, shortest,
        longest and median launch. ``kernel`` is the short identity the rules match."""
        rows = [
            {
                "trace": p.result.path,
                "rank": p.rank,
                "name": k.name,
                "kernel": identity(k.name),
                "category": k.category,
                "rule": k.rule,
                "count": k.count,
                "time_us": k.time_us,
                "mean_us": k.mean_us,
                "min_us": k.min_us,
                "max_us": k.max_us,
                "p50_us": k.p50_us,
            }
            for p in self.partials
            for k in p.result.kernels
        ]
        return Table.from_rows("kernels", KERNEL_KINDS, rows)

    @property
    def phases(self) -> Table:
        """One row per phase or step the trace annotates (tracekit's prefill/decode, ProfilerStep),
        with its attention time and share of the span."""
        rows = []
        for r in self.results:
            for ph in r.phases:
                attn = ph.categories.get("attention")
                attn_us = attn.time_us if attn else 0.0
                rows.append(
                    {
                        "trace": r.path,
                        "phase": ph.phase,
                        "step": ph.step,
                        "context_tokens": ph.context_tokens,
                        "time_us": ph.time_us,
                        "span_us": ph.span_us,
                        "busy_us": ph.busy_us,
                        "idle_us": ph.idle_us,
                        "attention_us": attn_us,
                        "attention_share": attn_us / ph.span_us if ph.span_us > 0 else None,
                    }
                )
        return Table.from_rows("phases", PHASE_KINDS, rows)

    @property
    def steps(self) -> Table:
        """One row per step (``analyze --by step``): its phase, requests, query and KV tokens from
        the engine's annotation or the attention operator's shapes (unknown: <NA>), attention,
        other and idle µs, span and attention share. ``growth`` fits it against KV tokens."""
        t = self.step_table
        cols: dict[str, list[Any]] = {"trace": [t.paths[i] for i in t.trace.tolist()]}
        cols["step"] = [None if s < 0 else s for s in t.step.tolist()]
        cols["phase"], cols["source"] = t.phase.tolist(), [s or None for s in t.source.tolist()]
        for c in ("requests", "query_tokens", "kv_tokens"):
            cols[c] = [None if v != v else int(v) for v in getattr(t, c).tolist()]
        for c in ("attention_us", "other_us", "idle_us", "span_us", "attention_share", "start_us"):
            cols[c] = [None if v != v else v for v in getattr(t, c).tolist()]
        return Table("steps", STEP_KINDS, cols)

    @property
    def step_table(self) -> StepTable:
        """The step table's columns (numpy), every trace's in input order."""
        return concat([p.steps for p in self.partials if p.steps is not None])

    def limits(
        self,
        *,
        device: str | None = None,
        peak_bandwidth: float | None = None,
        peak_flops: float | None = None,
        model_config: str | PathLike[str] | None = None,
    ) -> AnalysisLimits:
        """How far each step's attention, weight GEMMs and whole step, and each GEMM kernel with
        recorded shapes, are from the device's limits (docs/limits.md). The device comes from the
        trace (or ``device``, a name of ``tracekit devices``, or ``peak_bandwidth`` in GB/s and
        ``peak_flops`` in TFLOP/s); the model from the trace's shapes, its run's manifest or
        ``model_config`` (a local config.json). Needs ``analyze(..., limits=True)``, the default."""
        from tracekit.limits.flags import LimitFlags
        from tracekit.limits.steps import kernel_fields, resolve, step_fields

        config = Path(model_config) if model_config is not None else None
        LimitFlags(device, peak_bandwidth, peak_flops, config).check()
        facts = [p.facts for p in self.partials]
        lim = resolve(
            facts,
            device=device,
            peak_bandwidth=peak_bandwidth,
            peak_flops=peak_flops,
            model_config=config,
            paths=[p.result.path for p in self.partials],
        )
        step_rows: list[dict[str, Any]] = []
        kernel_rows: list[dict[str, Any]] = []
        problems: list[str] = []
        for i, (p, f) in enumerate(zip(self.partials, facts)):
            r = p.result
            if p.steps is not None:
                rows = p.steps.rows()
                fields, lines = step_fields(rows, r.phases, lim, f, trace=i)
                problems += [f"{r.path}: {line}" for line in lines]
                for row, extra in zip(rows, fields):
                    step_rows.append({"trace": r.path, "step": row["step"], "phase": row["phase"],
                                      "kv_tokens": row["kv_tokens"], **extra})  # fmt: skip
            for k in r.kernels:
                kf = kernel_fields(f.kernels.get(k.name) if f is not None else None, lim.roof)
                if kf["bytes"] is not None:
                    kernel_rows.append({"trace": r.path, "name": k.name, "kernel": identity(k.name), **kf})
        return AnalysisLimits(
            lim,
            Table.from_rows("limits.steps", LIMIT_STEP_KINDS, step_rows),
            Table.from_rows("limits.kernels", LIMIT_KERNEL_KINDS, kernel_rows),
            problems,
        )

    def growth(self, at_kv: int | None = None) -> Growth:
        """Attention µs per decode step against KV tokens (and the rest against query tokens):
        least squares with bootstrap-over-steps 95 % intervals; a prediction at ``at_kv`` (a
        number of KV tokens within twice the measured range, as ``--at-kv``)."""
        if at_kv is not None and (isinstance(at_kv, bool) or not isinstance(at_kv, int) or not 0 < at_kv <= 10**12):
            raise UserError(f"at_kv={at_kv!r}: give a whole number of KV tokens between 1 and 10^12")
        return growth(self.step_table, at_kv)

    @property
    def ranks(self) -> Table:
        """The per-rank table (traces of a multi-rank job); empty when the traces carry no ranks."""
        t = self.summary.ranks
        rows = [] if t is None else [{k: getattr(r, k) for k in RANK_KINDS} for r in t.rows]
        return Table.from_rows("ranks", RANK_KINDS, rows)

    @cached_property
    def launches(self) -> Table:
        """Every item of device work of every trace (kernels, memcpy, memset; operators on CPU-only
        traces), in file order: its name and identity, category and rule, stream, start, duration,
        the time counted (clipped to the window) and its phase. Loads the traces again in this
        process and holds one row per event: for a fleet of large traces, ask for one trace."""
        from tracekit.api.launches import launches

        return launches(self.results, self._traces, self.window, self.read)

    def to_json(self) -> dict[str, Any]:
        """The ``tracekit.analysis/1`` document ``analyze --format json --by BY`` prints."""
        return dict(json.loads(self._json()))

    def _json(self, at_kv: int | None = None) -> str:
        from tracekit.render.analyze_rows import to_json

        if self.by != "step":
            return to_json(self.results, self.summary.to_json(), self.by)
        steps = [p.steps for p in self.partials]
        return to_json(self.results, self.summary.to_json(), self.by, steps, self.growth(at_kv))

    @property
    def plot(self) -> AnalysisPlots:
        return AnalysisPlots(self)

    def _repr_html_(self) -> str:
        s = self.summary
        total = sum(c.time_us for c in s.categories.values())
        attn = s.categories.get("attention")
        share = f"{100 * attn.time_us / total:.1f}%" if attn and total else "n/a"
        head = (
            f"<p><b>tracekit analysis</b> of {s.traces} trace(s)"
            + (f", {len(self.failed)} failed" if self.failed else "")
            + f": device busy {s.busy_us / 1000:.3f} ms, attention {share} of device time.</p>"
        )
        failed = "".join(
            f"<p>failed: {html.escape(printable(f.path))}: {html.escape(printable(f.error))}</p>" for f in self.failed
        )
        return head + failed + self.categories._repr_html_()

    def __repr__(self) -> str:
        return f"<tracekit.Analysis of {len(self.partials)} trace(s), {len(self.failed)} failed>"


@dataclass
class AnalysisLimits:
    """The roof and model facts used (``device``, ``model_facts``: as in ``analyze --format
    json``), each step's achieved figures (``steps``) and each GEMM kernel's with recorded shapes
    (``kernels``); ``problems``: figures above the device's peak (the truth check), one line each."""

    limits: Limits
    steps: Table
    kernels: Table
    problems: list[str]

    @property
    def device(self) -> dict[str, Any]:
        return dict(self.limits.to_json()["device"])

    @property
    def model_facts(self) -> dict[str, Any] | None:
        facts = self.limits.to_json()["model_facts"]
        return None if facts is None else dict(facts)

    @property
    def notes(self) -> list[str]:
        return self.limits.notes + self.limits.step_notes


class AnalysisPlots:
    """Figures of an analysis, as matplotlib figures (they show inline in a notebook)."""

    def __init__(self, a: Analysis) -> None:
        self._a = a

    def categories(self) -> Any:
        """Device time per category, one bar per trace, stacked."""
        from tracekit.report.plots import figure

        a = self._a
        cats = [c for c in a.summary.categories if a.summary.categories[c].time_us > 0]
        fig, ax = figure(7, 2.0 + 0.5 * max(1, len(a.results)))  # room for the legend below
        left = [0.0] * len(a.results)
        for c in cats:
            ms = [(r.categories[c].time_us if c in r.categories else 0.0) / 1000 for r in a.results]
            ax.barh(range(len(a.results)), ms, left=left, label=c)
            left = [x + y for x, y in zip(left, ms)]
        ax.set_yticks(range(len(a.results)), [_short(r.path) for r in a.results])
        ax.set_xlabel("device time (ms)")
        ax.legend(fontsize="small", ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
        fig.tight_layout()
        return fig


def _short(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def analyze(
    paths: Paths,
    window: str | None = None,
    by: str | None = None,
    workers: int | None = None,
    *,
    scheduler: str | None = None,
    partial: bool = False,
    read: ReadOptions | None = None,
    limits: bool = True,
) -> Analysis:
    """Analyze traces as ``tracekit analyze`` does: ``paths`` are files, folders (searched
    recursively), globs, or loaded ``Trace`` objects. Several traces run on Dask when they are
    large enough to pay for a cluster (``workers`` overrides: 1 runs in this process; ``scheduler``
    names an existing cluster). ``by`` is the JSON's grouping (category, phase, step or kernel);
    ``read`` how each file is read (``ReadOptions.from_env()`` reads the command line's variables);
    ``limits`` also reads the shapes the trace recorded, for ``Analysis.limits`` (a second, narrow
    read of a file that holds GEMM or attention operators)."""
    from tracekit.fleet.inputs import expand
    from tracekit.fleet.run import default_workers, run
    from tracekit.render.analyze_rows import GROUPINGS

    by = by or "category"
    if by not in GROUPINGS:
        raise UserError(f"by={by!r}: give one of {', '.join(GROUPINGS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"workers={workers!r}: give a whole number of processes, 1 or more (1: this process)")
    if isinstance(paths, str | PathLike | Trace):
        items: list[Any] = [paths]
    elif isinstance(paths, Iterable):
        items = list(paths)
    else:
        raise UserError(f"paths={paths!r}: give a trace file, a folder, a glob, a loaded Trace, or a list of them")
    if not items or any(not isinstance(p, Trace) and not str(p).strip() for p in items):
        raise UserError("paths: give at least one trace file, folder or glob (an empty name is none of them)")
    loaded = {t.path: t for t in items if isinstance(t, Trace)}
    files = expand([str(p) for p in items if not isinstance(p, Trace)]) if len(loaded) < len(items) else []
    options = TaskOptions(
        window=window, partial=partial, kernels="all", steps=True, limits=limits, read=read or ReadOptions()
    )
    outcome = Outcome()
    if loaded:
        outcome = _here(list(loaded.values()), options)
    if files:
        plan = Plan(workers or default_workers(files), scheduler)
        got = run(files, options, plan)
        outcome.partials += got.partials
        outcome.failed += got.failed
        outcome.interrupted = got.interrupted
    summary = summarize(outcome.partials, outcome.failed, interrupted=outcome.interrupted)
    return Analysis(
        paths=[*loaded, *files],
        window=window,
        by=by,
        partials=outcome.partials,
        failed=outcome.failed,
        summary=summary,
        interrupted=outcome.interrupted,
        read=options.read,
        _traces=loaded,
    )


def _here(traces: Sequence[Trace], options: TaskOptions) -> Outcome:
    from tracekit.fleet.task import analyze_loaded

    out = Outcome()
    for t in traces:
        r = analyze_loaded(t, options)
        if isinstance(r, Failure):
            out.failed.append(r)
        else:
            out.partials.append(r)
    return out
