"""Compare two runs context by context (e.g. --attn sdpa against --attn math, or two machines)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracekit.report.data import build_report
from tracekit.report.model import ReportData

FIELDS = ("tokens_per_s", "decode_ms_per_token", "attention_ms_per_token", "attention_share", "prefill_s", "idle_share")


@dataclass
class DiffRow:
    context_tokens: int
    a: dict[str, float | None]
    b: dict[str, float | None]

    def ratio(self, field: str) -> float | None:
        x, y = self.a.get(field), self.b.get(field)
        if x is None or y is None or x == 0:
            return None
        return y / x


def _figures(d: ReportData) -> dict[int, dict[str, float | None]]:
    return {c.context_tokens: {f: getattr(c, f) for f in FIELDS} for c in d.ok_contexts()}


def diff_runs(run_a: Path, run_b: Path) -> tuple[ReportData, ReportData, list[DiffRow]]:
    a, b = build_report(run_a), build_report(run_b)
    fa, fb = _figures(a), _figures(b)
    rows = [DiffRow(ctx, fa[ctx], fb[ctx]) for ctx in sorted(set(fa) & set(fb))]
    return a, b, rows


def diff_json(a: ReportData, b: ReportData, rows: list[DiffRow]) -> dict[str, Any]:
    return {
        "schema": "tracekit.diff/1",
        "a": a.run,
        "b": b.run,
        "contexts": [
            {"context_tokens": r.context_tokens, "a": r.a, "b": r.b, "ratio_b_over_a": {f: r.ratio(f) for f in FIELDS}}
            for r in rows
        ],
    }
