"""The step table: one row per engine step (or decode step, prefill chunk, profiler step), as columns.

Each step's context (requests, query tokens, KV tokens) comes from its annotation
(``annotations.STEP_READERS``: tracekit's own, vLLM's, SGLang's), or, for steps whose annotation
says nothing (a model forward under ``generate()``, a ``ProfilerStep#N``), from the recorded input
shapes of the step's first attention operator (``shapes.attention_context``). Its times are the
phase results' (``breakdown.phase_results``, sums over the one ``Attribution``): attention is the
``attention`` category, other is every other category, idle and span as the phase gives them.

Columns are numpy arrays; counts are float64 with NaN for "unknown" (exact up to 2**53), so a table
of a million steps is a few arrays, and JSON writes unknown as null, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracekit.analysis.result import AnalysisResult

ATTENTION = "attention"
# The per-step fields of ``analyze --by step`` (JSON ``steps[]``, CSV and table columns), in order.
COLUMNS = (
    "phase",
    "requests",
    "query_tokens",
    "kv_tokens",
    "attention_us",
    "other_us",
    "idle_us",
    "span_us",
    "attention_share",
)
_COUNTS = ("requests", "query_tokens", "kv_tokens")
_TIMES = ("attention_us", "other_us", "idle_us", "span_us", "attention_share", "start_us")
# Readers whose annotations carry no context: their steps may take it from input shapes.
SHAPE_SOURCES = frozenset({"forward", "profiler_step", "engine"})


def _f64(n: int = 0) -> NDArray[np.float64]:
    return np.full(n, np.nan, np.float64)


@dataclass
class StepTable:
    """Steps as columns, in time order within each trace and traces in input order.

    ``trace`` indexes ``paths``; ``step`` is the step's number (-1: none); counts and times are
    float64, NaN where unknown (``attention_share``: attention over the step's device time, NaN
    when it has none). ``notes`` say, one line each, what the table cannot tell and why."""

    paths: list[str] = field(default_factory=list)
    trace: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    step: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    phase: NDArray[np.str_] = field(default_factory=lambda: np.zeros(0, "U7"))
    source: NDArray[np.str_] = field(default_factory=lambda: np.zeros(0, "U13"))
    requests: NDArray[np.float64] = field(default_factory=_f64)
    query_tokens: NDArray[np.float64] = field(default_factory=_f64)
    kv_tokens: NDArray[np.float64] = field(default_factory=_f64)
    attention_us: NDArray[np.float64] = field(default_factory=_f64)
    other_us: NDArray[np.float64] = field(default_factory=_f64)
    idle_us: NDArray[np.float64] = field(default_factory=_f64)
    span_us: NDArray[np.float64] = field(default_factory=_f64)
    attention_share: NDArray[np.float64] = field(default_factory=_f64)
    start_us: NDArray[np.float64] = field(default_factory=_f64)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.step)

    def rows(self, trace: int | None = None) -> list[dict[str, Any]]:
        """JSON-ready rows (of one trace, or all): unknown counts and shares are None."""
        idx = np.arange(len(self)) if trace is None else np.flatnonzero(self.trace == trace)
        out: list[dict[str, Any]] = []
        cols = {c: getattr(self, c)[idx].tolist() for c in (*_COUNTS, *_TIMES)}
        for j, i in enumerate(idx.tolist()):
            row: dict[str, Any] = {"step": None if self.step[i] < 0 else int(self.step[i])}
            row["phase"] = str(self.phase[i])
            for c in _COUNTS:
                v = cols[c][j]
                row[c] = None if v != v else int(v)
            for c in ("attention_us", "other_us", "idle_us", "span_us"):
                row[c] = round(cols[c][j], 3)
            share = cols["attention_share"][j]
            row["attention_share"] = None if share != share else round(share, 4)
            row["source"] = str(self.source[i])
            out.append(row)
        return out


def concat(tables: list[StepTable]) -> StepTable:
    """The tables one after another (their traces renumbered), notes in the same order."""
    if not tables:
        return StepTable()
    paths: list[str] = []
    traces = []
    for t in tables:
        traces.append(t.trace + len(paths))
        paths += t.paths
    cat = np.concatenate
    return StepTable(
        paths=paths,
        trace=cat(traces),
        step=cat([t.step for t in tables]),
        phase=cat([t.phase.astype("U7") for t in tables]),
        source=cat([t.source.astype("U13") for t in tables]),
        **{c: cat([getattr(t, c) for t in tables]) for c in (*_COUNTS, *_TIMES)},
        notes=[n for t in tables for n in t.notes],
    )


def step_table(result: AnalysisResult, shapes: dict[int, tuple[int, int, int]] | None = None) -> StepTable:
    """The steps of one analyzed trace. ``shapes`` maps a phase's index in ``result.phases`` to
    (requests, query tokens, KV tokens) read from input shapes, for steps whose annotation has none."""
    phases = result.phases
    n = len(phases)
    t = StepTable(paths=[result.path], trace=np.zeros(n, np.int64))
    t.step = np.array([-1 if p.step is None else p.step for p in phases], np.int64)
    t.phase = np.array([p.phase for p in phases], "U7")
    t.source = np.array([p.source or "" for p in phases], "U13")
    nan = float("nan")

    def count(v: int | None) -> float:
        return nan if v is None else float(v)

    t.requests = np.array([count(p.requests) for p in phases], np.float64)
    t.query_tokens = np.array([count(p.query_tokens) for p in phases], np.float64)
    t.kv_tokens = np.array([count(p.kv_tokens) for p in phases], np.float64)
    for i, (req, q, kv) in (shapes or {}).items():
        t.requests[i], t.query_tokens[i], t.kv_tokens[i] = req, q, kv
        if t.phase[i] == "step":
            t.phase[i] = "decode" if q == req else "prefill"
    att = np.array([p.categories[ATTENTION].time_us if ATTENTION in p.categories else 0.0 for p in phases])
    total = np.array([p.time_us for p in phases], np.float64)
    t.attention_us = att.astype(np.float64)
    t.other_us = np.maximum(0.0, total - t.attention_us)
    t.idle_us = np.array([p.idle_us for p in phases], np.float64)
    t.span_us = np.array([p.span_us for p in phases], np.float64)
    t.start_us = np.array([p.start_us for p in phases], np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t.attention_share = np.where(total > 0, t.attention_us / np.where(total > 0, total, 1.0), np.nan)
    t.notes = [f"{result.path}: {p.note}" for p in phases if p.note]
    if not n:
        t.notes.append(
            f"{result.path}: no steps: the trace has no step annotation (tracekit's, vLLM's, SGLang's, "
            "ProfilerStep#N) and no model forward frames; record with "
            "torch.profiler.profile(with_stack=True, record_shapes=True), or call prof.step() once a step"
        )
    unknown = int(np.count_nonzero(np.isnan(t.kv_tokens) & np.isin(t.source, list(SHAPE_SOURCES))))
    if unknown:
        t.notes.append(
            f"{result.path}: {unknown} of {n} steps have no KV length: their annotations do not carry it and the "
            "trace has no input shapes of an attention operator in them; record with "
            "torch.profiler.profile(record_shapes=True) to get it"
        )
    return t
