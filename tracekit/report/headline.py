"""The report's answer first, in three short lines, every figure with its 95 % interval:

- **what grew**: decode ms/token from the smallest to the largest context, and the change per
  token of each category, largest first;
- **why**: what share of the *total* growth more bytes to read (the bandwidth bound) explain,
  said once;
- **trust**: whether the timer, the machine and the noise let the figures stand.

Each line comes from one small function of ``LINES`` (a ``Growth`` in, a line or None out), so a
line is added by adding a function. Built from the report data alone (facts and findings), so
Markdown, HTML, the terminal and JSON (``headline.lines``) show the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tracekit import stats
from tracekit.report.distance import distance_line
from tracekit.report.findings import ci
from tracekit.report.model import ContextFigures, ReportData
from tracekit.report.uncertainty import category_change, decode_reps, difference
from tracekit.stats import Interval

# Categories named one by one in "what grew"; the rest are summed into "others".
NAMED_CATEGORIES = 3


def split(line: str) -> tuple[str, str]:
    """A line's lead (``What grew:``) and the rest, for renderers that set the lead apart."""
    lead, sep, rest = line.partition(": ")
    return (lead + ":", rest) if sep and len(lead) < 20 else ("", line)


@dataclass
class Headline:
    lines: list[str]
    smallest_context: int | None = None
    largest_context: int | None = None
    figures: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, Interval | None] = field(default_factory=dict)
    timer_honest: bool = True
    machine_quiet: bool = True
    conclusive: bool = True
    # (category, change in ms per decoded token, its interval), largest change first
    categories: list[tuple[str, float, Interval | None]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The lines as one paragraph (for a place with room for one)."""
        return " ".join(self.lines)


@dataclass
class Growth:
    """What the line functions read: the report, its two ends, and the figures drawn from them."""

    d: ReportData
    a: ContextFigures
    b: ContextFigures
    added: float
    added_ci: Interval | None
    pct_ci: Interval | None
    categories: list[tuple[str, float, Interval | None]]  # (category, change ms/token, interval), largest first
    bound: float | None  # the bandwidth bound's added ms/token
    bound_share: float | None  # of the total growth
    bound_share_ci: Interval | None


LineFn = Callable[[Growth], str | None]


def _v(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _signed(x: float) -> str:
    return f"{x:+.3g}"


def what_grew(g: Growth) -> str:
    a, b = g.a, g.b
    x, y = a.decode_ms_per_token or 0.0, b.decode_ms_per_token or 0.0
    pct = f", {100.0 * (y / x - 1.0):+.0f}%" if x else ""
    line = (
        f"What grew: from {a.context_tokens:,} to {b.context_tokens:,} tokens, decode went "
        f"{x:.3g}{ci(a.decode_ms_per_token_ci95)} → {y:.3g}{ci(b.decode_ms_per_token_ci95)} ms/token "
        f"({_signed(y - x)}{ci(g.added_ci)} ms{pct})"
    )
    if not g.categories:
        missing = [f"{c.context_tokens:,}" for c in (a, b) if not c.categories_ms_per_token]
        if missing:
            return f"{line}; per category: unknown (no usable trace at {' and '.join(missing)} tokens)."
        return line + "."
    named = g.categories[:NAMED_CATEGORIES]
    parts = [f"{name} {_signed(v)}{ci(iv)}" for name, v, iv in named]
    rest = g.categories[NAMED_CATEGORIES:]
    if rest:
        parts.append(f"{len(rest)} others {_signed(sum(v for _, v, _ in rest))}")
    return f"{line}; per token: {', '.join(parts)} ms."


def why(g: Growth) -> str | None:
    d = g.d
    if g.bound is None:
        return (
            "Why: the bandwidth bound is unknown (pass --peak-bandwidth GBPS to see what reading more bytes explains)."
        )
    bw = f"{d.facts.bandwidth_gbps:,.1f} GB/s" if d.facts.bandwidth_gbps else "the peak bandwidth"
    if g.added_ci is not None and g.added_ci[0] <= 0.0 <= g.added_ci[1]:
        return (
            f"Why: reading the longer KV cache at {bw} adds {g.bound:.3g} ms per token; the total growth "
            f"({g.added:+.3g}{ci(g.added_ci)} ms) is within the noise, so no share of it is given."
        )
    if g.bound_share is None:
        return (
            f"Why: decode did not get slower; reading the longer KV cache at {bw} would add {g.bound:.3g} ms per token."
        )
    share = f"{100 * g.bound_share:.0f}%{ci(g.bound_share_ci, '{:.0f}', 100)}"
    rest = (
        f"the other {100 * (1 - g.bound_share):.0f}% is compute and overhead"
        if g.bound_share < 0.95
        else "that accounts for the whole growth"
    )
    return f"Why: reading the longer KV cache at {bw} adds {g.bound:.3g} ms per token, {share} of the total growth; {rest}."


def trust(d: ReportData, conclusive: bool | None, ends: tuple[int, int] | None) -> str:
    timer, _ = _timer(d)
    parts = [timer]
    load = d.facts.device.background_load
    if load is not None and (load.high or load.too_busy):
        busy = f"other processes used {load.mean_cores or 0.0:.1f} of {load.cpus} cores"
        if load.too_busy:
            parts.append(f"the machine was too busy to measure honestly ({busy}): treat every figure as rough")
        else:
            parts.append(f"other work ran beside the capture ({busy}); the intervals include its effect")
    else:
        parts.append("the machine was quiet" if load is not None else "the machine's load was not recorded")
    if conclusive is not None and ends is not None:
        a, b = ends
        parts.append(
            f"the intervals at {a:,} and {b:,} tokens are apart"
            if conclusive
            else f"the intervals at {a:,} and {b:,} tokens overlap: this run cannot tell the two contexts apart "
            "(the findings say which range would)"
        )
    return "Trust: " + "; ".join(parts) + "."


def _trust_line(g: Growth) -> str:
    return trust(
        g.d,
        not stats.overlap(g.a.decode_ms_per_token_ci95, g.b.decode_ms_per_token_ci95),
        (g.a.context_tokens, g.b.context_tokens),
    )


def _distance_line(g: Growth) -> str | None:
    line = distance_line(g.d.facts)
    return None if line is None else f"Limit: {line}"


# The headline's lines, in order; a new line is a function here.
LINES: list[LineFn] = [what_grew, why, _distance_line, _trust_line]


def _categories(a: ContextFigures, b: ContextFigures) -> list[tuple[str, float, Interval | None]]:
    """Each category's change per token, largest first; none where either end has no usable trace
    (its categories are unknown, not zero)."""
    if not a.categories_ms_per_token or not b.categories_ms_per_token:
        return []
    names = set(a.categories_ms_per_token) | set(b.categories_ms_per_token)
    changes = [(name, *category_change(a, b, name)) for name in names]
    return sorted(changes, key=lambda t: (-abs(t[1]), t[0]))


def growth(d: ReportData, a: ContextFigures, b: ContextFigures) -> Growth:
    x, y = a.decode_ms_per_token or 0.0, b.decode_ms_per_token or 0.0
    added_reps, added_ci = difference(a, b, "decode")
    ra, rb = decode_reps(a), decode_reps(b)
    pct_ci = None if ra is None or rb is None else stats.interval(100.0 * (rb / ra - 1.0))
    bound = bound_share = bound_share_ci = None
    if a.bound_ms_per_token is not None and b.bound_ms_per_token is not None:
        bound = b.bound_ms_per_token - a.bound_ms_per_token
        if y - x > 0:
            bound_share = bound / (y - x)
        if added_reps is not None:
            bound_share_ci = stats.interval(
                np.where(added_reps > 0, bound / np.where(added_reps > 0, added_reps, 1.0), np.nan)
            )
    return Growth(d, a, b, y - x, added_ci, pct_ci, _categories(a, b), bound, bound_share, bound_share_ci)


def headline(d: ReportData) -> Headline:
    ok = d.facts.ok_contexts()
    honest = _timer(d)[1]
    load = d.facts.device.background_load
    quiet = load is None or not (load.high or load.too_busy)
    if not ok:
        return Headline(
            [
                "What grew: nothing was measured (every context failed, or --tokens 1 produced only the "
                "prefill's token): there is nothing to compare.",
                trust(d, None, None),
            ],
            timer_honest=honest,
            machine_quiet=quiet,
        )
    a, b = ok[0], ok[-1]
    if a is b:
        lines = [
            f"What grew: only context {a.context_tokens:,} was measured: decode takes {_v(a.decode_ms_per_token)}"
            f"{ci(a.decode_ms_per_token_ci95)} ms/token ({_v(a.tokens_per_s, '{:.1f}')}"
            f"{ci(a.tokens_per_s_ci95, '{:.1f}')} tokens/s); capture two or more context lengths to see how it grows.",
            trust(d, None, None),
        ]
        return Headline(lines, a.context_tokens, a.context_tokens, timer_honest=honest, machine_quiet=quiet)
    g = growth(d, a, b)
    lines = [line for fn in LINES if (line := fn(g)) is not None]
    h = Headline(lines, a.context_tokens, b.context_tokens, timer_honest=honest, machine_quiet=quiet)
    h.categories = g.categories
    x, y = a.decode_ms_per_token or 0.0, b.decode_ms_per_token or 0.0
    att = dict((k, (v, iv)) for k, v, iv in g.categories).get("attention")
    h.figures = {
        "decode_ms_per_token_smallest": x,
        "decode_ms_per_token_largest": y,
        "tokens_per_s_smallest": a.tokens_per_s,
        "tokens_per_s_largest": b.tokens_per_s,
        "increase_pct": 100.0 * (y / x - 1.0) if x else None,
        "added_ms_per_token": y - x,
        "attention_added_ms_per_token": att[0] if att else None,
        "attention_share_smallest": a.attention_share,
        "attention_share_largest": b.attention_share,
        "bandwidth_bound_added_ms_per_token": g.bound,
        "bandwidth_bound_share_of_added": g.bound_share,
    }
    h.intervals = {
        "decode_ms_per_token_smallest": a.decode_ms_per_token_ci95,
        "decode_ms_per_token_largest": b.decode_ms_per_token_ci95,
        "tokens_per_s_smallest": a.tokens_per_s_ci95,
        "tokens_per_s_largest": b.tokens_per_s_ci95,
        "increase_pct": g.pct_ci,
        "added_ms_per_token": g.added_ci,
        "attention_added_ms_per_token": att[1] if att else None,
        "attention_share_smallest": a.attention_share_ci95,
        "attention_share_largest": b.attention_share_ci95,
        "bandwidth_bound_share_of_added": g.bound_share_ci,
    }
    h.conclusive = not stats.overlap(a.decode_ms_per_token_ci95, b.decode_ms_per_token_ci95)
    return h


def _timer(d: ReportData) -> tuple[str, bool]:
    """Whether the timings can be trusted as timings: synchronized, and no host span that ends
    before its device work (from the findings)."""
    kinds = {f.kind for f in d.findings}
    if "unsynchronized-timer" in kinds:
        return "the timer was NOT honest (a reading taken without synchronizing stopped early: see the findings)", False
    ratios = [c.prefill_s / c.prefill_s_unsynced for c in d.facts.ok_contexts() if c.prefill_s and c.prefill_s_unsynced]
    agree = f", the unsynchronized prefill reading within {max(ratios):.2f}x" if ratios else ""
    if "host-device-gap" in kinds:
        return f"the timer was honest (synchronized{agree}), but host spans end before their device work", True
    return f"the timer was honest (synchronized{agree})", True
