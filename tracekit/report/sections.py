"""The report as sections of blocks (bullets, tables, plots): built once from ``ReportData``, so the
Markdown and HTML renderers show the same content and cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracekit.report import plots
from tracekit.report.model import ContextFigures, ReportData


@dataclass
class Bullet:
    text: str
    label: str = ""  # shown strong before the text (a finding's severity)
    tag: str = ""  # shown in parentheses after the label (a finding's kind)


@dataclass
class Bullets:
    items: list[Bullet]
    empty: str = "none"


@dataclass
class Table:
    head: list[str]
    rows: list[list[str]]


@dataclass
class Plots:
    names: list[str]


Block = Bullets | Table | Plots


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


TITLE = "tracekit report: decode cost against context"


def _f(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


COLUMNS: tuple[str, ...] = (
    "context tokens",
    "prefill s (sync)",
    "prefill s (no sync)",
    "prefill tok/s",
    "decode ms/token (median)",
    "tokens/s",
    "attention ms/token",
    "attention share",
    "idle share",
    "bound ms/token",
    "profiler overhead",
)


def context_row(c: ContextFigures) -> list[str]:
    if c.status != "ok":
        return [str(c.context_tokens), f"failed: {c.error or ''}"] + [""] * (len(COLUMNS) - 2)
    return [
        str(c.context_tokens),
        _f(c.prefill_s),
        _f(c.prefill_s_unsynced),
        _f(c.prefill_tokens_per_s, "{:,.0f}"),
        _f(c.decode_ms_per_token),
        _f(c.tokens_per_s, "{:.1f}"),
        _f(c.attention_ms_per_token),
        _pct(c.attention_share),
        _pct(c.idle_share),
        _f(c.bound_ms_per_token),
        _f(c.profiler_overhead, "{:.2f}x"),
    ]


def summary(d: ReportData) -> list[str]:
    m = d.model
    return [
        f"Run: {d.run}",
        f"Model: {m.name or '?'} · {m.layers} layers · {m.heads} heads / {m.kv_heads} KV heads "
        f"· head dim {m.head_dim} · {m.dtype} · {int(m.parameter_bytes or 0) / 1e6:,.1f} MB of weights"
        f" · attention: {m.attn or '?'}",
        f"Device: {d.device.name or '?'} ({d.device.kind or '?'}); peak bandwidth "
        f"{_f(d.bandwidth_gbps, '{:,.1f}')} GB/s, {d.bandwidth_source}",
    ]


def _categories(d: ReportData) -> Table | None:
    ok = [c for c in d.ok_contexts() if c.categories_ms_per_token]
    if not ok:
        return None
    order = list(plots.COLORS)
    cats = sorted(
        {k for c in ok for k in c.categories_ms_per_token}, key=lambda k: order.index(k) if k in order else 99
    )
    rows = [[str(c.context_tokens), *[_f(c.categories_ms_per_token.get(k)) for k in cats]] for c in ok]
    return Table(["context tokens", *cats], rows)


def sections(d: ReportData, *, with_plots: bool = True) -> list[Section]:
    """The whole report, in order. The first section (titled ``TITLE``) is the summary."""
    out = [
        Section(TITLE, [Bullets([Bullet(line) for line in summary(d)])]),
        Section("Findings", [Bullets([Bullet(f.message, f.severity, f.kind) for f in d.findings])]),
        Section("Per context", [Table(list(COLUMNS), [context_row(c) for c in d.contexts])]),
    ]
    cats = _categories(d)
    if cats is not None:
        out.append(Section("ms per decoded token, by category", [cats]))
    if d.fits:
        rows = [[k, f"{f.intercept:.4g}", f"{f.slope * 1000:.4g}", f"{f.r2:.4f}"] for k, f in d.fits.items()]
        out.append(
            Section(
                "Growth with context (least squares: ms/token = a + b·context)",
                [Table(["part", "a (ms)", "b (ms per 1k tokens)", "R²"], rows)],
            )
        )
    kern = [[str(c.context_tokens), n, f"{t:.1f}"] for c in d.ok_contexts() for n, t in c.top_attention_kernels]
    if kern:
        out.append(
            Section("Attention kernels and ops (per decode step)", [Table(["context", "name", "µs per step"], kern)])
        )
    ok = d.ok_contexts()
    if ok and ok[-1].top_kernels:
        c = ok[-1]
        rows = [[n, cat, rule, str(cnt), f"{us:.1f}"] for n, cat, rule, cnt, us in c.top_kernels]
        out.append(
            Section(
                f"Largest device work in the context-{c.context_tokens} trace (all phases)",
                [Table(["kernel / op", "category", "rule", "count", "µs"], rows)],
            )
        )
    if with_plots:
        out.append(Section("Plots", [Plots(list(plots.PLOTS))]))
    return out
