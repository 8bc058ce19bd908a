"""Compare two runs context by context (e.g. --attn sdpa against --attn math, or two machines).

Per common context: the ratio of decode time per token, B over A, with its 95 % interval, and a
verdict. The interval comes from the two runs' own rounds: each run's decode median is redrawn by
the two-stage bootstrap of ``tracekit.stats`` (rounds, then steps within them), each run with its
own seed (the runs are independent measurements), and the ratio is taken replicate by replicate.
B is faster where the whole interval lies below 1, slower where it lies above, and otherwise this
pair of runs cannot tell. The settings of the two runs stand side by side, each difference
flagged; runs of another model, backend, device or dtype, or a machine too busy to measure, get a
warning line: their ratio is not a like-for-like comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracekit import stats
from tracekit.report.data import build_report
from tracekit.report.findings import ci
from tracekit.report.model import ContextFigures, ReportData, ReportFacts
from tracekit.report.sections import Answer, Bullet, Bullets, Section, Table
from tracekit.stats import Interval

SCHEMA = "tracekit.diff/1"
# Figures kept side by side in the JSON (the table shows decode time, its ratio and the verdict).
FIELDS = ("tokens_per_s", "decode_ms_per_token", "attention_ms_per_token", "attention_share", "prefill_s", "idle_share")
# Settings whose difference makes the ratio something other than the effect of the rest.
NOT_COMPARABLE = ("backend", "model", "device", "dtype")
# Measured bandwidths further apart than this (relative) are flagged.
BANDWIDTH_TOLERANCE = 0.10


@dataclass
class DiffRow:
    context_tokens: int
    a: dict[str, float | None]
    b: dict[str, float | None]
    a_ci: Interval | None = None  # decode ms/token
    b_ci: Interval | None = None
    ratio: float | None = None  # decode ms/token, B / A
    ratio_ci: Interval | None = None
    verdict: str = "cannot tell"  # "B faster" | "B slower" | "cannot tell"

    def ratio_of(self, name: str) -> float | None:
        x, y = self.a.get(name), self.b.get(name)
        if x is None or y is None or x == 0:
            return None
        return y / x


@dataclass
class Setting:
    name: str
    a: str
    b: str
    differs: bool


@dataclass
class Diff:
    a: ReportData
    b: ReportData
    rows: list[DiffRow]
    settings: list[Setting]
    warnings: list[str] = field(default_factory=list)

    @property
    def comparable(self) -> bool:
        return not self.warnings


def _replicates(c: ContextFigures, run: str) -> Any:
    return stats.replicates(c.decode_samples_ms, "median", seed=stats.seed_for("diff", run, c.context_tokens))


def verdict(iv: Interval | None) -> str:
    """``B faster`` when the whole interval of B/A lies below 1, ``B slower`` above, else ``cannot tell``."""
    if iv is None:
        return "cannot tell"
    if iv[1] < 1.0:
        return "B faster"
    if iv[0] > 1.0:
        return "B slower"
    return "cannot tell"


def compare(ca: ContextFigures, cb: ContextFigures) -> DiffRow:
    """One context of both runs: their figures, and the ratio of decode time with its interval."""
    row = DiffRow(
        ca.context_tokens,
        {f: getattr(ca, f) for f in FIELDS},
        {f: getattr(cb, f) for f in FIELDS},
        ca.decode_ms_per_token_ci95,
        cb.decode_ms_per_token_ci95,
    )
    row.ratio = row.ratio_of("decode_ms_per_token")
    ra, rb = _replicates(ca, "a"), _replicates(cb, "b")
    if ra is not None and rb is not None:
        row.ratio_ci = stats.interval(rb / ra)
    row.verdict = verdict(row.ratio_ci)
    return row


def _load(d: ReportFacts) -> str:
    load = d.device.background_load
    if load is None or load.mean_cores is None:
        return "not recorded"
    state = "too busy" if load.too_busy else "high" if load.high else "quiet"
    return f"{load.mean_cores:.2f} of {load.cpus} cores ({state})"


def _threads(d: ReportFacts) -> str:
    load = d.device.background_load
    if load is not None and load.threads_by_round:
        return "/".join(str(t) for t in sorted(set(load.threads_by_round)))
    return str(d.device.threads) if d.device.threads else "?"


def settings(a: ReportFacts, b: ReportFacts) -> list[Setting]:
    def one(d: ReportFacts) -> dict[str, str]:
        bw = d.device.measured_bandwidth_gbps
        return {
            "backend": str(d.settings.get("backend") or "?"),
            "model": d.model.name or "?",
            "attention": d.model.attn or str(d.settings.get("attn") or "?"),
            "dtype": d.model.dtype or "?",
            "threads": _threads(d),
            "device": f"{d.device.name or '?'} ({d.device.kind or '?'})",
            "measured bandwidth": "n/a" if bw is None else f"{bw:,.1f} GB/s",
            "background load": _load(d),
            "rounds": str(d.settings.get("rounds") or "?"),
            "tokens": str(d.settings.get("tokens") or "?"),
        }

    sa, sb = one(a), one(b)
    out = [Setting(k, sa[k], sb[k], sa[k] != sb[k]) for k in sa]
    ba, bb = a.device.measured_bandwidth_gbps, b.device.measured_bandwidth_gbps
    for s in out:
        # Two measurements of one machine differ a little: only a real gap is a difference.
        if s.name == "measured bandwidth" and ba and bb and abs(bb - ba) <= BANDWIDTH_TOLERANCE * max(ba, bb):
            s.differs = False
        # The load differs whenever it is measured; what matters is whether it disturbed the timings.
        if s.name == "background load":
            s.differs = s.a.split("(")[-1] != s.b.split("(")[-1]
    return out


def warnings(a: ReportFacts, b: ReportFacts, table: list[Setting]) -> list[str]:
    out = []
    other = [s.name for s in table if s.name in NOT_COMPARABLE and s.differs]
    if other:
        out.append(
            f"not comparable: the runs differ in {', '.join(other)}; the ratio is the effect of all of that together"
        )
    for name, d in (("A", a), ("B", b)):
        load = d.device.background_load
        if load is not None and load.too_busy:
            out.append(
                f"run {name} was too busy to measure honestly (other processes used {load.mean_cores or 0.0:.2f} of "
                f"{load.cpus} cores): its figures are rough"
            )
    return out


def diff_runs(run_a: Path, run_b: Path) -> Diff:
    a, b = build_report(run_a), build_report(run_b)
    fa = {c.context_tokens: c for c in a.facts.ok_contexts()}
    fb = {c.context_tokens: c for c in b.facts.ok_contexts()}
    rows = [compare(fa[ctx], fb[ctx]) for ctx in sorted(set(fa) & set(fb))]
    table = settings(a.facts, b.facts)
    return Diff(a, b, rows, table, warnings(a.facts, b.facts, table))


def _f(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _ratio(r: DiffRow) -> str:
    return "n/a" if r.ratio is None else f"{r.ratio:.2f}x{ci(r.ratio_ci, '{:.2f}')}"


def summary_lines(d: Diff) -> list[str]:
    """One line per verdict kind, then the warnings: the answer of the diff."""
    lines = []
    for kind in ("B faster", "B slower", "cannot tell"):
        at = [r for r in d.rows if r.verdict == kind]
        if at:
            where = ", ".join(f"{r.context_tokens:,} ({_ratio(r)})" for r in at)
            label = {"B faster": "B is faster at", "B slower": "B is slower at", "cannot tell": "Cannot tell at"}[kind]
            lines.append(f"{label}: {where}.")
    return lines + [f"Warning: {w}." for w in d.warnings]


SETTINGS_HEAD = ["setting", "A", "B", ""]
ROWS_HEAD = ["context", "A ms/token [95% CI]", "B ms/token [95% CI]", "B/A [95% CI]", "verdict"]


def settings_rows(d: Diff) -> list[list[str]]:
    return [[s.name, s.a, s.b, "differs" if s.differs else ""] for s in d.settings]


def context_rows(d: Diff) -> list[list[str]]:
    return [
        [
            f"{r.context_tokens:,}",
            _f(r.a["decode_ms_per_token"]) + ci(r.a_ci),
            _f(r.b["decode_ms_per_token"]) + ci(r.b_ci),
            _ratio(r),
            r.verdict,
        ]
        for r in d.rows
    ]


def sections(d: Diff) -> list[Section]:
    """The diff as report sections (so the Markdown and HTML renderers draw it as they draw a report)."""
    return [
        Section(
            "tracekit diff: B against A, decode time per token",
            [
                Answer(summary_lines(d)),
                Bullets([Bullet(f"A = {d.a.facts.run}"), Bullet(f"B = {d.b.facts.run}")]),
            ],
        ),
        Section("Per context (medians; B/A < 1: B is faster)", [Table(ROWS_HEAD, context_rows(d))]),
        Section("Settings", [Table(SETTINGS_HEAD, settings_rows(d))]),
    ]


def diff_json(d: Diff) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "a": d.a.facts.run,
        "b": d.b.facts.run,
        "comparable": d.comparable,
        "warnings": d.warnings,
        "summary": summary_lines(d),
        "settings": [{"name": s.name, "a": s.a, "b": s.b, "differs": s.differs} for s in d.settings],
        "contexts": [
            {
                "context_tokens": r.context_tokens,
                "a": r.a,
                "b": r.b,
                "decode_ms_per_token_ci95": {"a": stats.rounded(r.a_ci, 4), "b": stats.rounded(r.b_ci, 4)},
                "decode_ratio_b_over_a": None if r.ratio is None else round(r.ratio, 4),
                "decode_ratio_ci95": stats.rounded(r.ratio_ci, 4),
                "verdict": r.verdict,
                "ratio_b_over_a": {f: r.ratio_of(f) for f in FIELDS},
            }
            for r in d.rows
        ],
    }
