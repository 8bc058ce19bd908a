"""The summary of many traces as tables: categories over all traces, and the per-rank table.
Plain data in, rich renderables out; nothing prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracekit.fleet.merge import RankTable, Summary

if TYPE_CHECKING:  # rich loads only when a table is drawn
    from rich.table import Table


def _ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def summary_table(s: Summary) -> Table:
    """Device time per category over every analyzed trace."""
    from rich.table import Table

    total = sum(c.time_us for c in s.categories.values()) or 1.0
    failed = f", {len(s.failed)} failed" if s.failed else ""
    cancelled = f", {s.cancelled} not analyzed (interrupted)" if s.cancelled else ""
    t = Table(
        title=f"{s.traces} trace{'' if s.traces == 1 else 's'}{failed}{cancelled}: busy {_ms(s.busy_us)} ms, idle {_ms(s.idle_us)} ms in all"
    )
    for h in ("category", "time_us", "count", "percent"):
        t.add_column(h, justify="left" if h == "category" else "right")
    for k, v in sorted(s.categories.items(), key=lambda kv: -kv[1].time_us):
        if v.count:
            t.add_row(k, f"{v.time_us:.1f}", str(v.count), f"{100 * v.time_us / total:.1f}")
    return t


def rank_table(r: RankTable) -> Table:
    """One row per rank; the slowest rank is marked, the skew is in the title."""
    from rich.table import Table

    sources = sorted({row.source for row in r.rows})
    unranked = f"; {r.unranked} traces without a rank left out" if r.unranked else ""
    t = Table(
        title=f"per rank (rank from {' and '.join(sources)}): slowest rank {r.slowest_rank}, "
        f"skew {r.skew:.3f} (its step time over the median rank's){unranked}"
    )
    head = ("rank", "traces", "step_ms", "busy_ms", "idle_ms", "attention_ms", "comm_ms", "exposed_comm_ms")
    for h in head:
        t.add_column(h, justify="right")
    for row in r.rows:
        mark = " *" if row.rank == r.slowest_rank else ""
        t.add_row(
            f"{row.rank}{mark}",
            str(row.traces),
            _ms(row.step_us),
            _ms(row.busy_us),
            _ms(row.idle_us),
            _ms(row.attention_us),
            _ms(row.communication_us),
            _ms(row.exposed_communication_us),
        )
    return t
