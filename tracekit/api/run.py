"""``tracekit.load_run``: a captured run folder as the report sees it, with tables.

The figures are the report's own (``report.data.build_report``): the same medians, intervals,
fits and findings that ``tracekit report`` writes, read from the run's manifest and traces.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from tracekit.api.advise import Advice
from tracekit.api.table import ACHIEVED_KINDS, Kind, Table
from tracekit.manifest import Manifest, read_manifest
from tracekit.report.model import ContextFigures, ReportData
from tracekit.sanitize import printable

# Scalar figures of each context, named as in the report's JSON (``tracekit.report/1``); each
# interval is two columns, ``<figure>_ci95_lo`` and ``_hi``.
_CONTEXT_FIGURES = (
    "prefill_s",
    "prefill_s_unsynced",
    "prefill_tokens_per_s",
    "decode_ms_per_token",
    "tokens_per_s",
    "profiled_tokens_per_s",
    "attention_ms_per_token",
    "attention_share",
    "idle_share",
    "profiler_overhead",
    "bound_ms_per_token",
    "attention_bound_ms_per_token",
    "ttft_s",
    "itl_ms_p50",
    "itl_ms_p90",
    "itl_ms_p99",
)
_CONTEXT_INTERVALS = (
    "decode_ms_per_token",
    "tokens_per_s",
    "attention_ms_per_token",
    "attention_share",
    "prefill_s",
    "ttft_s",
)
CONTEXT_KINDS: dict[str, Kind] = {
    "context_tokens": "int",
    "status": "category",
    **{k: "float" for k in _CONTEXT_FIGURES},
    **{f"{k}_ci95_{e}": "float" for k in _CONTEXT_INTERVALS for e in ("lo", "hi")},
    "bytes_per_step": "int",
    "rounds": "int",
    "error": "str",
}
CATEGORY_KINDS: dict[str, Kind] = {"context_tokens": "int", "category": "category", "ms_per_token": "float"}
ROUND_KINDS: dict[str, Kind] = {"context_tokens": "int", "round": "int", "decode_ms_per_token": "float", "steps": "int"}
STEP_KINDS: dict[str, Kind] = {
    "context_tokens": "int",
    "round": "int",
    "step": "int",
    "decode_ms": "float",
    "warmup": "bool",
}
FIT_KINDS: dict[str, Kind] = {
    "figure": "category",
    "intercept_ms": "float",
    "slope_ms_per_1k_tokens": "float",
    "slope_ci95_lo": "float",
    "slope_ci95_hi": "float",
    "r2": "float",
    "points": "int",
}
LIMIT_KINDS: dict[str, Kind] = {
    "context_tokens": "int",
    **{f"{p}{k}": v for p in ("attention_", "gemm_", "step_") for k, v in ACHIEVED_KINDS.items()},
    "ceiling_tokens_per_s": "float",
}
FINDING_KINDS: dict[str, Kind] = {"kind": "category", "severity": "category", "message": "str"}


@dataclass
class Run:
    """A run folder: its manifest and the report's data. Tables: ``contexts``, ``categories``,
    ``rounds``, ``steps``, ``fits``, ``findings``; ``headline``; ``to_json()`` is ``report.json``;
    ``plot`` draws the report's figures; ``report_html()`` the whole HTML report."""

    path: Path
    manifest: Manifest
    data: ReportData

    @property
    def headline(self) -> str:
        from tracekit.report.headline import headline

        return headline(self.data).text

    @property
    def contexts(self) -> Table:
        """One row per context length: the report's medians with their 95 % intervals."""
        return Table.from_rows("contexts", CONTEXT_KINDS, [_context_row(c) for c in self.data.facts.contexts])

    @property
    def categories(self) -> Table:
        """Device time per decode token, by context and category (ms per token)."""
        rows = [
            {"context_tokens": c.context_tokens, "category": k, "ms_per_token": v}
            for c in self.data.facts.contexts
            for k, v in c.categories_ms_per_token.items()
        ]
        return Table.from_rows("categories", CATEGORY_KINDS, rows)

    @property
    def rounds(self) -> Table:
        """Each round's median decode step at each context (the rounds are interleaved)."""
        rows = [
            {"context_tokens": c.context_tokens, "round": i + 1, "decode_ms_per_token": ms, "steps": len(steps)}
            for c in self.data.facts.contexts
            for i, (ms, steps) in enumerate(zip(c.decode_ms_by_round, c.decode_samples_ms))
        ]
        return Table.from_rows("rounds", ROUND_KINDS, rows)

    @property
    def steps(self) -> Table:
        """Every timed decode step, warm-up steps included (``warmup`` marks them), round by round."""
        rows = []
        for e in self.manifest.contexts:
            t = e.timings
            for r, steps in enumerate(t.decode_s_by_round):
                for i, s in enumerate(steps):
                    warm = i < t.warmup_steps
                    rows.append(
                        {
                            "context_tokens": e.context_tokens,
                            "round": r + 1,
                            "step": i,
                            "decode_ms": s * 1000,
                            "warmup": warm,
                        }
                    )
        return Table.from_rows("steps", STEP_KINDS, rows)

    @property
    def fits(self) -> Table:
        """How each figure grows with context: a least-squares line and the slope's 95 % interval."""
        rows = []
        for k, f in self.data.facts.fits.items():
            ci = f.slope_ci95
            rows.append(
                {
                    "figure": k,
                    "intercept_ms": f.intercept,
                    "slope_ms_per_1k_tokens": f.slope * 1000,
                    "slope_ci95_lo": None if ci is None else ci[0] * 1000,
                    "slope_ci95_hi": None if ci is None else ci[1] * 1000,
                    "r2": f.r2,
                    "points": f.n,
                }
            )
        return Table.from_rows("fits", FIT_KINDS, rows)

    @property
    def findings(self) -> Table:
        return Table.from_rows(
            "findings",
            FINDING_KINDS,
            [{"kind": f.kind, "severity": f.severity, "message": f.message} for f in self.data.findings],
        )

    @property
    def limits(self) -> Table:
        """Per context: how far attention, the weight GEMMs and the whole decode step are from the
        device's limits (bytes, FLOPs, achieved TB/s and TFLOP/s, share of the roof, bound) and the
        ceiling on tokens/s the bandwidth allows (docs/limits.md); ``device`` says which roof."""
        doc = self.to_json()
        rows = [
            {"context_tokens": c["context_tokens"], **{k: c.get(k) for k in list(LIMIT_KINDS)[1:]}}
            for c in doc["contexts"]
        ]
        return Table.from_rows("limits", LIMIT_KINDS, rows)

    @property
    def device(self) -> dict[str, Any]:
        """The device and the roof the report compares with (``report.json``'s ``device``)."""
        return dict(self.to_json()["device"])

    def advise(self, **options: Any) -> Advice:
        """``tracekit advise RUN``: what would help, with numbers; ``options`` are
        ``tracekit.advise``'s (``target_tps``, ``on``, ``generate``, ``kv_bits``, ...)."""
        from tracekit.api.advise import advise

        return advise(self.path, **options)

    def to_json(self) -> dict[str, Any]:
        """The ``tracekit.report/1`` document ``tracekit report RUN --format json`` writes."""
        import json

        from tracekit.report.renderers import render

        return dict(json.loads(render(self.data, "json").text))

    def report_html(self) -> ReportHTML:
        """The HTML report (plots embedded); a notebook shows it inline."""
        from tracekit.report.renderers import render

        return ReportHTML(render(self.data, "html").text)

    @property
    def plot(self) -> RunPlots:
        return RunPlots(self.data)

    def _repr_html_(self) -> str:
        return (
            f"<p><b>tracekit run</b> {html.escape(printable(str(self.path)))}</p><p>{html.escape(printable(self.headline))}</p>"
            + (self.contexts._repr_html_())
        )

    def __repr__(self) -> str:
        return f"<tracekit.Run {self.path}: {len(self.data.facts.contexts)} contexts>"


@dataclass
class ReportHTML:
    html: str

    def _repr_html_(self) -> str:
        return self.html


class RunPlots:
    """The report's figures as matplotlib figures (inline in a notebook)."""

    def __init__(self, data: ReportData) -> None:
        self._d = data.facts

    def categories(self) -> Any:
        """Device time per decode token by category, stacked, at each context."""
        from tracekit.report.plots import stacked_categories

        return stacked_categories(self._d)

    def tokens_per_s(self) -> Any:
        """Measured tokens/s at each context beside the memory-bandwidth bound."""
        from tracekit.report.plots import tokens_vs_bound

        return tokens_vs_bound(self._d)

    def attention_share(self) -> Any:
        """Attention's share of a decode step against context, with the fit."""
        from tracekit.report.plots import attention_share

        return attention_share(self._d)


def _context_row(c: ContextFigures) -> dict[str, Any]:
    row: dict[str, Any] = {"context_tokens": c.context_tokens, "status": c.status}
    row.update({k: getattr(c, k) for k in _CONTEXT_FIGURES})
    for k in _CONTEXT_INTERVALS:
        iv = getattr(c, f"{k}_ci95")
        row[f"{k}_ci95_lo"], row[f"{k}_ci95_hi"] = (None, None) if iv is None else iv
    row.update(bytes_per_step=c.bytes_per_step, rounds=c.rounds, error=c.error)
    return row


def load_run(run_dir: str | PathLike[str], *, partial: bool = False) -> Run:
    """A run folder (``tracekit capture``'s output), with the report's figures computed from it."""
    from tracekit.report.data import build_report

    path = Path(run_dir)
    data = build_report(path, partial=partial)
    return Run(Path(data.facts.run), read_manifest(Path(data.facts.run)), data)
