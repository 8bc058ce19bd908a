"""Findings and renderers on hand-built report data: fast, deterministic, no capture needed."""

from __future__ import annotations

import html.parser
import re

import pytest

from tracekit.analysis.gaps import HostDeviceGap
from tracekit.manifest import DeviceFacts, ModelFacts
from tracekit.report.figures import growth
from tracekit.report.findings import findings_for
from tracekit.report.model import ContextFigures, ReportData, ReportFacts
from tracekit.report.renderers import RENDERERS, render
from tracekit.report.renderers.json import to_json

MODEL = ModelFacts(
    name="hand/7b", layers=32, heads=32, kv_heads=8, head_dim=128, dtype="float16", dtype_bytes=2,
    parameter_bytes=14_000_000_000, attn="sdpa", max_context=32768,
)  # fmt: skip


def _ctx(
    n: int, ms: float, attn_ms: float, *, idle: float = 0.05, sync: float = 0.1, unsync: float = 0.1
) -> ContextFigures:
    return ContextFigures(
        context_tokens=n,
        status="ok",
        prefill_s=sync,
        prefill_s_unsynced=unsync,
        decode_ms_per_token=ms,
        tokens_per_s=1000.0 / ms,
        attention_ms_per_token=attn_ms,
        attention_share=attn_ms / ms,
        categories_ms_per_token={"attention": attn_ms, "gemm": ms - attn_ms},
        idle_share=idle,
        top_attention_kernels=[("flash_fwd_kernel<x>", attn_ms * 1000)],
        top_kernels=[("flash_fwd_kernel<x>", "attention", "flash-attention", 10, attn_ms * 10_000)],
    )


def _facts(
    contexts: list[ContextFigures], *, kind: str = "cuda", gaps: list[HostDeviceGap] | None = None
) -> ReportFacts:
    return ReportFacts(
        run="hand-run",
        device=DeviceFacts(kind=kind, name="Hand GPU"),
        model=MODEL,
        settings={},
        contexts=contexts,
        growth=growth(contexts),
        bandwidth_gbps=1000.0,
        bandwidth_source="given",
        complete=True,
        gaps=gaps or [],
    )


def _kinds(facts: ReportFacts) -> set[str]:
    return {f.kind for f in findings_for(facts)}


def test_unsynchronized_prefill_is_an_error_finding_only_past_the_ratio() -> None:
    bad = _facts([_ctx(512, 20.0, 2.0, sync=0.50, unsync=0.02), _ctx(4096, 30.0, 12.0)])
    found = [f for f in findings_for(bad) if f.kind == "unsynchronized-timer"]
    assert len(found) == 1 and found[0].severity == "error" and "512" in found[0].message
    fine = _facts([_ctx(512, 20.0, 2.0, sync=0.15, unsync=0.10), _ctx(4096, 30.0, 12.0)])
    assert "unsynchronized-timer" not in _kinds(fine)


def test_launch_bound_only_on_gpus() -> None:
    idle = [_ctx(512, 20.0, 2.0, idle=0.5), _ctx(4096, 30.0, 12.0, idle=0.5)]
    assert "launch-bound" in _kinds(_facts(idle))
    assert "launch-bound" not in _kinds(_facts(idle, kind="cpu"))


def test_growth_fits_and_where_attention_is_half() -> None:
    facts = _facts([_ctx(1000, 20.0, 2.0), _ctx(3000, 24.0, 6.0)])
    att = facts.growth.fits["attention"]
    assert att.slope * 1000 == pytest.approx(2.0) and facts.growth.fits["other"].slope == pytest.approx(0.0)
    # attention = 2 ms per 1k; rest = 18 ms: half at 18 ms of attention, i.e. 9,000 tokens.
    assert facts.growth.attention_half_at == pytest.approx(9000.0)
    msgs = [f.message for f in findings_for(facts) if f.kind == "attention-half"]
    assert msgs and "9,000" in msgs[0]


def test_host_device_gap_becomes_a_warning() -> None:
    gap = HostDeviceGap("ProfilerStep#3", host_start_us=0.0, host_dur_us=1000.0, device_end_us=5000.0, launched=4)
    found = [f for f in findings_for(_facts([_ctx(512, 20.0, 2.0)], gaps=[gap])) if f.kind == "host-device-gap"]
    assert found and "ProfilerStep#3" in found[0].message and "80.0%" in found[0].message


class _Headings(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.titles: list[str] = []
        self._in = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag in ("h1", "h2")
        if self._in:
            self.titles.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = False

    def handle_data(self, data: str) -> None:
        if self._in:
            self.titles[-1] += data


def _data() -> ReportData:
    facts = _facts([_ctx(512, 20.0, 2.0, sync=0.5, unsync=0.02), _ctx(4096, 30.0, 12.0)])
    return ReportData.of(facts, findings_for(facts))


def test_markdown_and_html_show_the_same_sections_and_cells() -> None:
    d = _data()
    md = render(d, "md", attachments=False).text
    page = render(d, "html").text
    h = _Headings()
    h.feed(page)
    md_titles = [re.sub(r"^#+ ", "", line) for line in md.splitlines() if line.startswith("#")]
    assert h.titles[: len(md_titles)] == md_titles and h.titles[len(md_titles) :] == ["Plots"]
    for cell in ("flash_fwd_kernel&lt;x&gt;", "unsynchronized-timer", "0.02", "33.3"):
        assert cell in md and cell in page, cell


def test_markdown_escapes_markup_from_trace_names() -> None:
    d = _data()
    d.findings[0].message = "<script>alert(1)</script>ProfilerStep#6 | x"
    md = render(d, "md", attachments=False).text
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_every_renderer_names_its_extension_and_json_is_the_schema() -> None:
    assert {k: r.EXTENSION for k, r in RENDERERS.items()} == {"md": "md", "html": "html", "json": "json"}
    doc = to_json(_data())
    assert doc["schema"] == "tracekit.report/1" and doc["model"]["kv_heads"] == 8
    assert "architecture" not in doc["model"]  # unknown facts are left out, not written as null
