"""What ``tracekit analyze`` draws in a terminal: the rows (``render.analyze_rows``) as rich tables
that fit the width, the notes under them, the ``--explain`` table and the growth fits in words.
Plain data in, rich renderables or text out; nothing prints. Every string from a trace goes out
through ``sanitize.printable``."""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Literal

from tracekit.analysis.result import AnalysisResult
from tracekit.analysis.rules import RULE_INDEX
from tracekit.render.analyze_rows import LimitView, rows
from tracekit.sanitize import printable

if TYPE_CHECKING:  # rich loads only when a table is drawn
    from rich.console import RenderableType
    from rich.table import Table

    from tracekit.analysis.growth import Growth
    from tracekit.analysis.steps import StepTable


def notes(r: AnalysisResult) -> list[str]:
    """One line each for what the figures rest on beyond launches in the trace: work with no launch
    (with a ``--window`` to try when the trace has profiler steps), graph replays, a host-side window."""
    out = []
    if r.unlinked_count:
        line = (
            f"{r.unlinked_count} kernels ({r.unlinked_us / 1000:.1f} ms) have no launch in the trace "
            "(a previous step's tail, or work launched before profiling began): counted, classified by name alone"
        )
        steps = [p.step for p in r.phases if p.phase == "step" and p.step is not None]
        if steps and r.window.source == "trace":
            line += f"; to leave them out try --window ProfilerStep#{steps[-1]}"
        out.append(line)
    if r.graph_count:
        out.append(
            f"{r.graph_count} kernels ({r.graph_us / 1000:.1f} ms) were replayed from CUDA/HIP graphs: "
            "classified by name alone"
        )
    if r.window.source == "host" and r.device == "gpu":
        out.append(
            f"window {r.window.name}: the device work launched within its host span "
            "(its device-side annotation does not cover that work)"
        )
    return out


# Columns that hold names: they take what width is left, shortened with an ellipsis; every other
# column holds numbers, which never wrap.
_NAME_COLUMNS = ("category", "kernel", "phase", "rule")


_QUALIFIER = re.compile(r"(?:\(anonymous namespace\)|[A-Za-z_][A-Za-z0-9_]*)::")


def compact(name: str, room: int | None) -> str:
    """A kernel's short name for a column ``room`` wide: its identity as is when it fits, else
    without namespace qualifiers (``elementwise_kernel<gpu_kernel_impl_nocast<direct_copy_kernel_cuda>>``),
    where what tells kernels apart sits at the end."""
    if room is None or len(name) <= room:
        return name
    return _QUALIFIER.sub("", name) or name


# The kernel table's own columns; the achieved figures beside them go to a table of their own.
KERNEL_COLUMNS = 5
# Columns that name the row: repeated in each part of a table split to fit the width.
_KEY_COLUMNS = ("kernel", "category", "phase", "step", "context_tokens")


def _wrapped(text: str, width: int | None) -> str:
    """``text`` broken at spaces to fit ``width`` (a line per note kept)."""
    if width is None:
        return text
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def _parts(head: list[str], natural: list[int], width: int | None, keys: int) -> list[list[int]]:
    """Column indices of each part: the ``keys`` first columns in every part, the others in turn
    while they fit ``width`` (each column costs its text, a space either side and a border)."""
    if width is None:
        return [list(range(len(head)))]
    base = sum(natural[:keys]) + 3 * keys + 1
    parts: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(keys, len(head)):
        cost = natural[i] + 3
        if current and used + cost > width:
            parts.append(current)
            current, used = [], base
        current.append(i)
        used += cost
    parts.append(current)
    return [list(range(keys)) + p for p in parts]


def table(
    r: AnalysisResult,
    by: str,
    steps: StepTable | None = None,
    view: LimitView | None = None,
    index: int = 0,
    *,
    wide: bool = False,
    top: int | None = None,
    width: int | None = None,
) -> RenderableType:
    """The rows as rich tables that fit ``width`` columns: kernels by their short identity (the
    full name with ``wide``: it then folds over lines), numbers kept whole on one line; the first
    column takes what the others leave and shortens its names with an ellipsis; columns that do
    not fit go to a further table that repeats the columns naming the row."""
    from rich.console import Group
    from rich.table import Table

    # The step table's own columns say attention and the rest; per-category columns stay in CSV and JSON.
    head, body = rows(r, by, [] if by == "step" and steps is not None else None, steps, view, index, wide=wide, top=top)
    shown = (
        f" (top {len(body)} of {len(r.kernels)})" if by == "kernel" and top is not None and top < len(r.kernels) else ""
    )
    busy_pct = 100 * r.busy_us / r.window.dur_us if r.window.dur_us else 0.0
    title = (
        f"{printable(r.path)} [{r.device}] window {printable(r.window.name)}: {r.window.dur_us / 1000:.3f} ms, "
        f"busy {r.busy_us / 1000:.3f} ms ({busy_pct:.1f}%), idle {r.idle_us / 1000:.3f} ms{shown}"
    )
    caption = "\n".join(
        map(printable, notes(r) + (steps.notes if steps is not None else []) + _limit_caption(view, index, r, steps))
    )
    cells = [[printable(c) for c in row] for row in body]
    natural = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(head)]
    keys = 1 if by in ("kernel", "category") else sum(1 for h in head if h in _KEY_COLUMNS)
    if head[0] == "kernel":
        # A kernel's own figures in one table; its distance to the device's roof (kernels whose
        # shapes were recorded) in a second one, for the kernels that have it.
        parts = [list(range(min(KERNEL_COLUMNS, len(head))))]
        if len(head) > KERNEL_COLUMNS:
            parts.append([0, *range(KERNEL_COLUMNS, len(head))])
    else:
        parts = _parts(head, natural, width, keys)
    out: list[RenderableType] = [_wrapped(title, width)]
    for n, cols in enumerate(parts):
        if n and head[0] == "kernel":
            cells = [row for row in cells if any(row[i] for i in cols[1:])]
            if not cells:
                break
        t = Table()
        rest = sum(natural[i] + 3 for i in cols[1:])
        room = None if width is None else width - rest - 4
        if by == "kernel" and not wide:
            cells = [[compact(row[0], room), *row[1:]] for row in cells]
        for i in cols:
            h = head[i]
            if i == 0:
                fold = wide and h == "kernel"
                limit = None if room is None else max(len(h), room)
                t.add_column(
                    h, justify="left", overflow="fold" if fold else "ellipsis", no_wrap=not fold, max_width=limit
                )
            else:
                justify: Literal["left", "right"] = "left" if h in _NAME_COLUMNS else "right"
                t.add_column(h, justify=justify, no_wrap=True, min_width=natural[i])
        for row in cells:
            t.add_row(*(row[i] for i in cols))
        out.append(t)
    if caption:
        out.append(_wrapped(caption, width))
    return Group(*out)


def _limit_caption(view: LimitView | None, index: int, r: AnalysisResult, steps: StepTable | None) -> list[str]:
    """The roof and the model facts' sources, under a step or kernel table (above-peak findings go
    to stderr, in every format)."""
    if view is None:
        return []
    lim = view.limits
    out = []
    if lim.roof is not None:
        out.append(f"peaks: {lim.roof.bandwidth_tb_s:g} TB/s; {lim.roof_source}")
    if lim.shape is not None:
        s = lim.shape
        out.append(
            f"model: {s.layers} layers, {s.heads}/{s.kv_heads} heads/KV heads, head dim {s.head_dim}, "
            f"{s.kv_bits:g}-bit KV ({s.source.get('layers', '?')})"
        )
    return out


def explain(r: AnalysisResult, pattern: re.Pattern[str]) -> Table | None:
    """Which rule classified each kernel whose name matches ``pattern``, and why (None: no match)."""
    from rich.table import Table

    t = Table(title=printable(f"{r.path}: rules for kernels matching {pattern.pattern!r}"))
    for col in ("kernel", "count", "time µs", "category", "rule", "why"):
        t.add_column(col, overflow="fold")
    n = 0
    for k in r.kernels:
        if pattern.search(k.name):
            rule = RULE_INDEX.get(k.rule)
            t.add_row(
                printable(k.name), str(k.count), f"{k.time_us:.1f}", k.category, k.rule, rule.note if rule else ""
            )
            n += 1
    return t if n else None


def growth_lines(g: Growth) -> list[str]:
    """The growth fits in words, one line each (``analyze --by step``)."""
    out = []
    a = g.attention
    if a is not None:
        ci = a.slope_ci95
        ci_text = f" [95%: {ci[0] * 1000:.3g} to {ci[1] * 1000:.3g}]" if ci else ""
        out.append(
            f"attention per decode step: {a.slope * 1000:.3g} us per 1k KV tokens{ci_text}, "
            f"intercept {a.intercept:.3g} us, R² {a.r2:.3f}, over {a.n} steps of {a.x_min:,.0f}-{a.x_max:,.0f} KV tokens"
        )
        if g.at_kv is not None:
            pci = a.at_ci95(g.at_kv)
            pci_text = f" [95%: {pci[0]:.3g} to {pci[1]:.3g}]" if pci else ""
            out.append(f"predicted attention at {g.at_kv:,} KV tokens: {a.at(g.at_kv):.3g} us per step{pci_text}")
    o = g.other
    if o is not None:
        ci = o.slope_ci95
        ci_text = f" [95%: {ci[0]:.3g} to {ci[1]:.3g}]" if ci else ""
        out.append(f"the rest: {o.slope:.3g} us per query token{ci_text}, R² {o.r2:.3f}, over {o.n} steps")
    return out + list(g.notes)
