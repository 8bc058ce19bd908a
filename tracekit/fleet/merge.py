"""Merging partials into one summary of many traces, with a per-rank table for multi-rank runs.

The merge is a fold over partials in input order (not in the order tasks finish), so the summary
is the same, to the last bit, however many workers made the partials. It reads only the partials:
sums, per-rank rows and each trace's step times.

Per rank (traces that carry a rank: ``analysis.ranks``): busy, idle, attention, communication and
exposed communication, summed over that rank's traces, and its step time, the median of its
steps. The slowest rank has the longest step time; the skew is that time over the median rank's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tracekit.analysis.ranks import ATTENTION
from tracekit.analysis.result import CategoryTime, KernelRow, summed_rows
from tracekit.fleet.task import TOP_KERNELS, Failure, TracePartial
from tracekit.sanitize import printable
from tracekit.stats import point

SUMMARY_KERNELS = 20


@dataclass
class RankRow:
    rank: int
    source: str  # where the rank came from: "distributedInfo" or "file name"
    traces: int = 0
    busy_us: float = 0.0
    idle_us: float = 0.0
    attention_us: float = 0.0
    communication_us: float = 0.0
    exposed_communication_us: float = 0.0
    step_us: float = 0.0  # median step time
    steps: int = 0


@dataclass
class RankTable:
    rows: list[RankRow]
    slowest_rank: int
    skew: float  # slowest rank's step time / the median rank's
    unranked: int = 0  # analyzed traces with no rank, left out of the table


@dataclass
class Summary:
    traces: int = 0  # analyzed; failed ones are listed apart
    failed: list[Failure] = field(default_factory=list)
    categories: dict[str, CategoryTime] = field(default_factory=dict)
    busy_us: float = 0.0
    idle_us: float = 0.0
    unlinked_us: float = 0.0
    unlinked_count: int = 0
    graph_us: float = 0.0
    graph_count: int = 0
    kernels: list[KernelRow] = field(default_factory=list)  # longest, from each trace's own longest
    ranks: RankTable | None = None
    # Why some traces that look like ranks are not in the per-rank table, or why there is none ("" when
    # every rank is in it)
    ranks_refused: str = ""
    interrupted: bool = False
    cancelled: int = 0  # traces not analyzed because of an interruption

    def to_json(self) -> dict[str, Any]:
        r3 = _r3
        return {
            "traces": self.traces,
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
            "categories": {k: {"time_us": r3(v.time_us), "count": v.count} for k, v in self.categories.items()},
            "busy_us": r3(self.busy_us),
            "idle_us": r3(self.idle_us),
            "unlinked_us": r3(self.unlinked_us),
            "unlinked_count": self.unlinked_count,
            "graph_us": r3(self.graph_us),
            "graph_count": self.graph_count,
            "kernels": [
                {"name": k.name, "category": k.category, "rule": k.rule, "count": k.count, "time_us": r3(k.time_us)}
                for k in self.kernels
            ],
            # Each trace sends its longest kernel rows only (partials stay small): a kernel outside
            # a trace's top rows is not counted for that trace, so these sums are lower bounds.
            "kernels_from": f"the {TOP_KERNELS} longest kernel rows of each trace",
            "ranks": None if self.ranks is None else _ranks_json(self.ranks),
            "ranks_refused": self.ranks_refused or None,
            "interrupted": self.interrupted,
            "cancelled": self.cancelled,
        }


def _r3(x: float) -> float:
    return round(x, 3)


def _ranks_json(t: RankTable) -> dict[str, Any]:
    rows = [
        {
            "rank": r.rank,
            "source": r.source,
            "traces": r.traces,
            **{k: _r3(getattr(r, k)) for k in _ROW_TIMES},
            "steps": r.steps,
        }
        for r in t.rows
    ]
    return {"rows": rows, "slowest_rank": t.slowest_rank, "skew": round(t.skew, 4), "unranked": t.unranked}


_ROW_TIMES = ("busy_us", "idle_us", "attention_us", "communication_us", "exposed_communication_us", "step_us")


def summarize(
    partials: list[TracePartial],
    failed: list[Failure],
    *,
    interrupted: bool = False,
    cancelled: int = 0,
    ranks: bool = False,
) -> Summary:
    """Fold ``partials`` (in input order) into one summary. The per-rank table takes the ranks the
    traces themselves carry (``distributedInfo``); ranks read from file names count only when the
    user says the traces are ranks of one job (``ranks``): unrelated traces are not ranks."""
    s = Summary(traces=len(partials), failed=list(failed), interrupted=interrupted, cancelled=cancelled)
    s.categories, kernels = summed_rows(p.result for p in partials)
    s.kernels = kernels[:SUMMARY_KERNELS]
    for p in partials:
        r = p.result
        s.busy_us += r.busy_us
        s.idle_us += r.idle_us
        s.unlinked_us += r.unlinked_us
        s.unlinked_count += r.unlinked_count
        s.graph_us += r.graph_us
        s.graph_count += r.graph_count
    trusted = [p for p in partials if ranks or p.rank_source == "distributedInfo"]
    claimed = _claimed_twice(trusted)
    s.ranks = rank_table([p for p in trusted if p.rank not in claimed])
    if s.ranks is not None:
        s.ranks.unranked += len(partials) - len(trusted)
    notes = [_claimed_note(claimed)] if claimed else []
    named = [p for p in partials if p.rank is not None and p.rank_source != "distributedInfo"]
    if not ranks and len({p.rank for p in named}) >= 2:
        notes.append(
            f"{len(named)} traces have a rank in their file name only, not in the trace (distributedInfo): "
            "no per-rank table, as unrelated traces are not ranks of one job; pass --ranks if they are"
        )
    s.ranks_refused = "; ".join(notes)
    return s


def _claimed_twice(partials: list[TracePartial]) -> dict[int, list[str]]:
    """Each rank that two traces provably both claim, with those traces' paths. One rank is one
    process: its profiled windows follow one another (or overlap, as an engine's extend and
    decode traces do), and those are summed. Overlapping windows are two claims of one rank when
    they are copies (the same window) or when together they are busier than the time they span,
    which one device cannot be. With fewer than two ranks there is no per-rank table to guard."""
    by_rank: defaultdict[int, list[TracePartial]] = defaultdict(list)
    for p in partials:
        if p.rank is not None:
            by_rank[p.rank].append(p)
    if len(by_rank) < 2:
        return {}
    claimed: dict[int, list[str]] = {}
    for rank, ps in sorted(by_rank.items()):
        if any(_impossible(group) for group in _overlapping(ps)):
            claimed[rank] = [p.result.path for p in ps]
    return claimed


def _overlapping(ps: list[TracePartial]) -> list[list[TracePartial]]:
    """The partials in groups whose windows overlap one another, in time order."""
    groups: list[list[TracePartial]] = []
    end = float("-inf")
    for p in sorted(ps, key=lambda p: p.result.window.start_us):
        w = p.result.window
        if groups and w.start_us < end:
            groups[-1].append(p)
        else:
            groups.append([p])
        end = max(end, w.end_us) if len(groups[-1]) > 1 else w.end_us
    return groups


def _impossible(group: list[TracePartial]) -> bool:
    if len(group) < 2:
        return False
    windows = [(p.result.window.start_us, p.result.window.dur_us) for p in group]
    span = max(s + d for s, d in windows) - min(s for s, _ in windows)
    return len(set(windows)) < len(windows) or sum(p.result.busy_us for p in group) > span


def _claimed_note(claimed: dict[int, list[str]]) -> str:
    shown = [
        f"rank {rank} by {', '.join(names[:2])}{f' and {len(names) - 2} more' if len(names) > 2 else ''}"
        for rank, names in claimed.items()
    ]
    more = f" and {len(shown) - 3} more ranks" if len(shown) > 3 else ""
    return printable(
        f"traces claim the same rank at once ({'; '.join(shown[:3])}{more}): copies of one window, or "
        "windows busier together than the time they span, which one device cannot be; these ranks are left "
        "out of the per-rank table rather than counted twice; analyze each job's traces apart"
    )


def rank_table(partials: list[TracePartial]) -> RankTable | None:
    """The per-rank table, when the partials carry at least two distinct ranks (else None)."""
    rows: dict[int, RankRow] = {}
    steps: defaultdict[int, list[float]] = defaultdict(list)
    unranked = 0
    for p in partials:
        if p.rank is None:
            unranked += 1
            continue
        row = rows.setdefault(p.rank, RankRow(p.rank, p.rank_source or ""))
        r = p.result
        row.traces += 1
        row.busy_us += r.busy_us
        row.idle_us += r.idle_us
        attn = r.categories.get(ATTENTION)
        row.attention_us += attn.time_us if attn else 0.0
        row.communication_us += p.communication_us
        row.exposed_communication_us += p.exposed_communication_us
        steps[p.rank].extend(p.step_us)
    if len(rows) < 2:
        return None
    for rank, row in rows.items():
        row.step_us = point([steps[rank]]) or 0.0
        row.steps = len(steps[rank])
    ordered = sorted(rows.values(), key=lambda r: r.rank)
    slowest = max(ordered, key=lambda r: r.step_us)
    median = point([[r.step_us for r in ordered]]) or 0.0
    return RankTable(ordered, slowest.rank, slowest.step_us / median if median > 0 else 1.0, unranked)
