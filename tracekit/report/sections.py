"""The report as sections of blocks (bullets, tables, plots): built once from ``ReportData``, so the
Markdown and HTML renderers show the same content and cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracekit.advice.model import AdviceSet
from tracekit.limits.roofline import Achieved
from tracekit.report import plots
from tracekit.report.distance import bandwidth_text
from tracekit.report.findings import ci
from tracekit.report.headline import headline
from tracekit.report.model import ContextFigures, ReportData, ReportFacts


@dataclass
class Bullet:
    text: str
    label: str = ""  # shown strong before the text (a finding's severity)
    tag: str = ""  # shown in parentheses after the label (a finding's kind)


@dataclass
class Paragraph:
    text: str
    label: str = ""  # shown strong before the text


@dataclass
class Answer:
    """The headline: one short line each, led by what it answers (``What grew:``)."""

    lines: list[str]


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


Block = Answer | Paragraph | Bullets | Table | Plots


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


TITLE = "tracekit report: decode cost against context"


def _f(x: float | None, fmt: str = "{:.3g}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _with_ci(x: float | None, iv: tuple[float, float] | None, fmt: str = "{:.3g}", scale: float = 1.0) -> str:
    return "n/a" if x is None else fmt.format(x * scale) + ci(iv, fmt, scale)


COLUMNS: tuple[str, ...] = (
    "context tokens",
    "decode ms/token [95% CI]",
    "tokens/s [95% CI]",
    "attention ms/token [95% CI]",
    "attention share [95% CI]",
    "idle share",
    "bound ms/token",
    "profiler overhead",
    "rounds",
)


def context_row(c: ContextFigures) -> list[str]:
    if c.status != "ok":
        return [str(c.context_tokens), f"failed: {c.error or ''}"] + [""] * (len(COLUMNS) - 2)
    return [
        str(c.context_tokens),
        _with_ci(c.decode_ms_per_token, c.decode_ms_per_token_ci95),
        _with_ci(c.tokens_per_s, c.tokens_per_s_ci95, "{:.1f}"),
        _with_ci(c.attention_ms_per_token, c.attention_ms_per_token_ci95),
        _with_ci(c.attention_share, c.attention_share_ci95, "{:.1f}%", 100.0),
        _pct(c.idle_share),
        _f(c.bound_ms_per_token),
        _f(c.profiler_overhead, "{:.2f}x"),
        str(c.rounds) if c.rounds else "n/a",
    ]


LATENCY_COLUMNS: tuple[str, ...] = (
    "context tokens",
    "TTFT s [95% CI]",
    "ITL p50 ms",
    "ITL p90 ms",
    "ITL p99 ms",
    "prefill s (sync) [95% CI]",
    "prefill s (no sync)",
    "prefill tok/s",
)


def latency_row(c: ContextFigures) -> list[str]:
    return [
        str(c.context_tokens),
        _with_ci(c.ttft_s, c.ttft_s_ci95),
        _f(c.itl_ms_p50),
        _f(c.itl_ms_p90),
        _f(c.itl_ms_p99),
        _with_ci(c.prefill_s, c.prefill_s_ci95),
        _f(c.prefill_s_unsynced),
        _f(c.prefill_tokens_per_s, "{:,.0f}"),
    ]


def summary(d: ReportFacts) -> list[str]:
    m = d.model
    lines = [
        f"Run: {d.run}",
        f"Model: {m.name or '?'} · {m.layers} layers · {m.heads} heads / {m.kv_heads} KV heads "
        f"· head dim {m.head_dim} · {m.dtype} · {int(m.parameter_bytes or 0) / 1e6:,.1f} MB of weights"
        f" · attention: {m.attn or '?'}",
        f"Device: {d.device.name or '?'} ({d.device.kind or '?'}); peak bandwidth "
        f"{_f(d.bandwidth_gbps, '{:,.1f}')} GB/s, {d.bandwidth_source}",
    ]
    load = d.device.background_load
    if load is not None:
        threads = "/".join(str(t) for t in sorted(set(load.threads_by_round))) or str(d.device.threads or "?")
        others = "n/a" if load.mean_cores is None else f"{load.mean_cores:.2f} of {load.cpus} cores"
        lines.append(
            f"Measurement: {d.settings.get('rounds', '?')} interleaved rounds, {threads} CPU thread(s) chosen from the "
            f"free cores; other processes' load {others} (before the sweep: {_f(load.before_cores, '{:.2f}')})"
        )
    return lines


def _categories(d: ReportFacts) -> Table | None:
    ok = [c for c in d.ok_contexts() if c.categories_ms_per_token]
    if not ok:
        return None
    order = list(plots.COLORS)
    cats = sorted(
        {k for c in ok for k in c.categories_ms_per_token}, key=lambda k: order.index(k) if k in order else 99
    )
    rows = [[str(c.context_tokens), *[_f(c.categories_ms_per_token.get(k)) for k in cats]] for c in ok]
    return Table(["context tokens", *cats], rows)


ADVICE_TITLE = "What would help"
PROJECTION_COLUMNS: tuple[str, ...] = (
    "context tokens",
    "device",
    "as",
    "weights MB",
    "KV cache MB",
    "bound ms/step",
    "ceiling tokens/s",
    "measured tokens/s [95% CI]",
    "predicted tokens/s [95% CI]",
)


def advice_section(a: AdviceSet) -> Section:
    """The advice, ranked (measurement checks first), each with what it rests on and assumes;
    then the projection table. The report and ``tracekit advise`` both show this."""
    items = []
    for x in a.advice:
        text = x.claim + " Rests on: " + "; ".join(x.rests_on) + "."
        if x.assumptions:
            text += " Assumes: " + "; ".join(x.assumptions) + "."
        items.append(Bullet(text, x.severity if x.kind == "measurement" else "", x.kind))
    blocks: list[Block] = [Bullets(items, empty="no advice: the measurements hold too little to rest any on")]
    if a.notes:
        blocks.append(Paragraph("; ".join(a.notes) + ".", "Left out:"))
    if a.bound_explains is not None:
        more = (
            " (more than all of it: the step grew less than reading the longer cache at that bandwidth would add, "
            "so caches served part of it, or the bandwidth figure is too low)"
            if a.bound_explains > 1
            else ""
        )
        blocks.append(
            Paragraph(
                f"the growth of the bytes read (KV cache at peak bandwidth) explains "
                f"{100 * a.bound_explains:.0f}%{ci(a.bound_explains_ci95, '{:.0f}', 100)} of the measured slowdown"
                f"{more}.",
                "Bound explains:",
            )
        )
    if a.projection:
        rows = [
            [
                str(p.context),
                p.device,
                p.variant,
                f"{p.weight_bytes / 1e6:,.1f}",
                f"{p.kv_bytes / 1e6:,.1f}",
                f"{p.bound_ms:.3g}",
                f"{p.ceiling_tokens_per_s:,.1f}",
                _with_ci(p.measured_tokens_per_s, p.measured_tokens_per_s_ci95, "{:,.1f}"),
                _with_ci(p.predicted_tokens_per_s, p.predicted_tokens_per_s_ci95, "{:,.1f}")
                + (" (extrapolated)" if p.extrapolated and p.predicted_tokens_per_s is not None else ""),
            ]
            for p in a.projection
        ]
        blocks.append(Table(list(PROJECTION_COLUMNS), rows))
    return Section(ADVICE_TITLE, blocks)


LIMIT_COLUMNS: tuple[str, ...] = (
    "context tokens",
    "tokens/s measured",
    "tokens/s ceiling",
    "attention MB",
    "attention achieved",
    "attention % of peak",
    "attention bound",
    "GEMM TFLOP/s",
    "GEMM % of peak",
    "step achieved",
    "step % of peak",
)


def _share(a: Achieved | None) -> str:
    if a is None or a.peak_share is None:
        return "n/a"
    if a.impossible:
        return "above peak (impossible: see findings)"
    return f"{100 * a.peak_share:.1f}%" + (" (of a measured floor)" if a.above_roof else "")


def limit_row(c: ContextFigures) -> list[str]:
    att, gemm, step = c.attention, c.gemm, c.step
    return [
        str(c.context_tokens),
        _f(c.tokens_per_s, "{:,.1f}"),
        _f(c.ceiling_tokens_per_s, "{:,.1f}"),
        _f(None if att is None else att.bytes / 1e6, "{:,.2f}"),
        "n/a" if att is None else bandwidth_text(att.tb_s),
        _share(att),
        (att.bound if att is not None else None) or "n/a",
        _f(None if gemm is None else gemm.tflops, "{:.3g}"),
        _share(gemm),
        "n/a" if step is None else bandwidth_text(step.tb_s),
        _share(step),
    ]


def sources_text(source: Mapping[str, str]) -> str:
    """Where the model facts come from, the facts of one source together: "layers, heads:
    config.json; kv_bits: manifest"."""
    by_source: dict[str, list[str]] = {}
    for fact, src in source.items():
        by_source.setdefault(src, []).append(fact)
    return "; ".join(f"{', '.join(facts)}: {src}" for src, facts in by_source.items())


def _limits(d: ReportFacts) -> Section | None:
    ok = [c for c in d.ok_contexts() if c.attention is not None or c.step is not None]
    if not ok:
        return None
    shape = d.shape
    roof = d.roof
    lines = []
    if roof is not None:
        flops = ", ".join(f"{k} {v:g}" for k, v in roof.tflops.items()) or "none known (pass --peak-flops)"
        lines.append(
            f"Roof: {roof.name}: {bandwidth_text(roof.bandwidth_tb_s)}, dense TFLOP/s {flops}; {d.roof_source}"
        )
    else:
        lines.append(f"Roof: none ({d.roof_source}); achieved figures are shown without a share of peak")
    if shape is not None:
        facts = sources_text(shape.source)
        lines.append(
            f"Model facts: {shape.layers} layers, {shape.heads} heads / {shape.kv_heads} KV heads, head dim {shape.head_dim}, "
            f"{shape.params / 1e6:,.1f} M parameters at {shape.weight_bits:g} bits, KV cache at {shape.kv_bits:g} bits "
            f"({shape.kv_bytes_per_token() / 1e3:,.1f} kB a token); {facts}"
        )
    return Section(
        "Distance to the limit (achieved bandwidth and FLOP/s against the device's peaks)",
        [Bullets([Bullet(x) for x in lines]), Table(list(LIMIT_COLUMNS), [limit_row(c) for c in ok])],
    )


def sections(d: ReportData, *, with_plots: bool = True) -> list[Section]:
    """The whole report, in order. The first section (titled ``TITLE``) is the summary."""
    h = headline(d)
    facts = d.facts
    out = [
        Section(TITLE, [Answer(h.lines), Bullets([Bullet(line) for line in summary(facts)])]),
        Section("Findings", [Bullets([Bullet(f.message, f.severity, f.kind) for f in d.findings])]),
        Section("Per context (medians, 95% intervals)", [Table(list(COLUMNS), [context_row(c) for c in facts.contexts])]),
    ]
    ok = facts.ok_contexts()
    if ok:
        out.append(
            Section(
                "Streaming latency and prefill (TTFT = prefill + first token; ITL = inter-token latency)",
                [Table(list(LATENCY_COLUMNS), [latency_row(c) for c in ok])],
            )
        )
    limits = _limits(facts)
    if limits is not None:
        out.append(limits)
    cats = _categories(facts)
    if cats is not None:
        out.append(Section("ms per decoded token, by category", [cats]))
    if facts.fits:
        rows = [
            [
                k,
                f"{f.intercept:.4g}{ci(f.intercept_ci95, '{:.4g}')}",
                f"{f.slope * 1000:.4g}{ci(f.slope_ci95, '{:.4g}', 1000.0)}",
                "exact (2 points)" if f.exact else f"{f.r2:.4f}",
            ]
            for k, f in facts.fits.items()
        ]
        out.append(
            Section(
                "Growth with context (least squares: ms/token = a + b·context, 95% intervals)",
                [Table(["part", "a (ms)", "b (ms per 1k tokens)", "R²"], rows)],
            )
        )
    kern = [[str(c.context_tokens), n, f"{t:.1f}"] for c in facts.ok_contexts() for n, t in c.top_attention_kernels]
    if kern:
        out.append(
            Section("Attention kernels and ops (per decode step)", [Table(["context", "name", "µs per step"], kern)])
        )
    if ok and ok[-1].top_kernels:
        c = ok[-1]
        rows = [[n, cat, rule, str(cnt), f"{us:.1f}"] for n, cat, rule, cnt, us in c.top_kernels]
        out.append(
            Section(
                f"Largest device work in the context-{c.context_tokens} trace (all phases)",
                [Table(["kernel / op", "category", "rule", "count", "µs"], rows)],
            )
        )
    if d.advice is not None:
        out.append(advice_section(d.advice))
    if with_plots:
        out.append(Section("Plots", [Plots(plots.available(facts))]))
    return out
