"""Findings and renderers on hand-built report data: fast, deterministic, no capture needed."""

from __future__ import annotations

import html
import html.parser
import re

import numpy as np
import pytest

from tests.helpers import sampled_context
from tracekit.analysis.timer_gaps import HostDeviceGap
from tracekit.manifest import BackgroundLoad, DeviceFacts, ModelFacts
from tracekit.report.findings import findings_for
from tracekit.report.headline import headline
from tracekit.report.model import ContextFigures, ReportData, ReportFacts
from tracekit.report.renderers import RENDERERS, render
from tracekit.report.renderers.jsonreport import to_json
from tracekit.report.run_analysis import growth

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


def test_growth_fits_without_intervals_claim_no_crossing_or_prediction() -> None:
    facts = _facts([_ctx(1000, 20.0, 2.0), _ctx(3000, 24.0, 6.0)])
    att = facts.growth.fits["attention"]
    assert att.slope * 1000 == pytest.approx(2.0) and facts.growth.fits["other"].slope == pytest.approx(0.0)
    # Points without intervals: the slope's direction is not known, so neither the crossing
    # (9,000 tokens by the points) nor a prediction is given.
    assert facts.growth.attention_half_at is None and not facts.growth.predictions
    msgs = {f.kind: f.message for f in findings_for(facts)}
    assert "cannot say" in msgs["attention-half"] and "no prediction" in msgs["decode-fit"]
    assert "exact through 2 points" in msgs["decode-fit"] and "R²" not in msgs["decode-fit"]


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
    return ReportData(facts, findings_for(facts))


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_markdown_and_html_show_the_same_sections_and_cells() -> None:
    d = _data()
    md = render(d, "md").text
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
    md = render(d, "md").text
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_every_renderer_names_its_extension_and_json_is_the_schema() -> None:
    assert {k: r.EXTENSION for k, r in RENDERERS.items()} == {"md": "md", "html": "html", "json": "json"}
    doc = to_json(_data())
    assert doc["schema"] == "tracekit.report/1" and doc["model"]["kv_heads"] == 8
    assert "architecture" not in doc["model"]  # unknown facts are left out, not written as null


def _sampled(
    n: int, ms: float, share: float, noise: float, share_noise: float, rng: np.random.Generator
) -> ContextFigures:
    return sampled_context(n, ms, share, noise, rng, share_noise)


def test_attention_growth_whose_interval_spans_zero_is_inconclusive() -> None:
    rng = np.random.default_rng(7)
    # Attention ~4 ms at every context, measured noisily: no growth this data can vouch for.
    cs = [_sampled(n, 20.0, share, 2.0, 0.08, rng) for n, share in ((1000, 0.20), (2000, 0.20), (3000, 0.21))]
    facts = _facts(cs)
    att = facts.growth.fits["attention"]
    assert att.slope_ci95 is not None and att.slope_ci95[0] < 0 < att.slope_ci95[1]
    found = [f for f in findings_for(facts) if f.kind == "attention-growth"]
    assert len(found) == 1 and found[0].severity == "warning"
    msg = found[0].message
    assert "inconclusive" in msg and "claims no direction" in msg
    # No sign claimed: neither a verb of direction nor the point estimate of the slope.
    assert not re.search(r"\b(grows|falls|rises|shrinks)\b", msg.split(";")[0]), msg
    assert f"{att.slope * 1000:.3g}" not in msg
    # The headline does not claim the attention cost either way beyond its interval.
    h = headline(ReportData(facts, findings_for(facts)))
    att = next(iv for name, _, iv in h.categories if name == "attention")
    assert att is not None and att[0] < h.figures["attention_added_ms_per_token"] < att[1]  # type: ignore[operator]
    assert f"attention {h.figures['attention_added_ms_per_token']:+.3g} [" in h.lines[0]
    # No prediction and no crossing from a slope whose interval includes zero.
    assert not facts.growth.predictions and facts.growth.attention_half_at is None


def test_clear_growth_is_stated_with_its_interval() -> None:
    rng = np.random.default_rng(3)
    cs = [_sampled(1000, 20.0, 0.10, 0.3, 0.01, rng), _sampled(3000, 24.0, 0.25, 0.3, 0.01, rng)]
    facts = _facts(cs)
    lo, hi = facts.growth.fits["attention"].slope_ci95 or (0.0, 0.0)
    assert 0 < lo < hi
    msg = next(f.message for f in findings_for(facts) if f.kind == "attention-growth")
    assert msg.startswith("Attention grows ") and f"[{lo * 1000:.3g}–{hi * 1000:.3g}]" in msg
    assert "noisy-measurement" not in _kinds(facts)
    pred = facts.growth.prediction_ci95["tokens_per_s@6000"]
    assert pred[0] < facts.growth.predictions["tokens_per_s@6000"] < pred[1]


def test_overlapping_intervals_are_a_noisy_measurement_naming_the_figure() -> None:
    rng = np.random.default_rng(11)
    cs = [_sampled(1000, 20.0, 0.20, 3.0, 0.01, rng), _sampled(3000, 20.5, 0.30, 3.0, 0.01, rng)]
    facts = _facts(cs)
    a, b = cs[0].decode_ms_per_token_ci95, cs[1].decode_ms_per_token_ci95
    assert a and b and a[0] <= b[1] and b[0] <= a[1]
    noisy = [f for f in findings_for(facts) if f.kind == "noisy-measurement"]
    assert noisy and noisy[0].severity == "warning"
    assert noisy[0].message.startswith("decode ms/token: the 95% intervals at context 1000")
    assert "attention share" not in " ".join(f.message for f in noisy)  # its intervals are apart
    h = headline(ReportData(facts, findings_for(facts)))
    assert not h.conclusive and "cannot tell the two contexts apart" in h.text


def test_a_busy_machine_is_an_error_finding_and_leads_the_headline() -> None:
    rng = np.random.default_rng(3)
    facts = _facts([_sampled(1000, 20.0, 0.10, 0.3, 0.01, rng), _sampled(3000, 24.0, 0.25, 0.3, 0.01, rng)])
    facts.device.background_load = BackgroundLoad(
        cpus=2, before_cores=1.1, by_round_cores=[1.4, 1.5], mean_cores=1.45, max_cores=1.5, threads_by_round=[1, 1],
        high=True, too_busy=True, note="too busy to measure honestly: other processes used 1.4 of 2 cores",
    )  # fmt: skip
    found = [f for f in findings_for(facts) if f.kind == "busy-machine"]
    assert len(found) == 1 and found[0].severity == "error" and "1.4 of 2 cores" in found[0].message
    h = headline(ReportData(facts, findings_for(facts)))
    assert not h.machine_quiet and h.timer_honest and "too busy to measure honestly" in h.text


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_the_headline_leads_every_format_with_the_same_text() -> None:
    rng = np.random.default_rng(3)
    facts = _facts([_sampled(1000, 20.0, 0.10, 0.3, 0.01, rng), _sampled(3000, 24.0, 0.25, 0.3, 0.01, rng)])
    d = ReportData(facts, findings_for(facts))
    h = headline(d)
    assert [line.split(":")[0] for line in h.lines] == ["What grew", "Why", "Trust"]
    assert h.lines[0].startswith("What grew: from 1,000 to 3,000 tokens, decode went ")
    assert h.conclusive and "the timer was honest" in h.lines[2] and "bandwidth bound" in h.lines[1]
    lo, hi = d.facts.contexts[0].decode_ms_per_token_ci95 or (0, 0)
    assert f"[{lo:.3g}–{hi:.3g}]" in h.lines[0]
    md = render(d, "md").text.splitlines()
    lead, rest = h.lines[0].split(": ", 1)
    assert md[0].startswith("# ") and md[2] == f"**{lead}:** {html.escape(rest, quote=False)}"
    assert [line for line in md[2:8] if line] == [
        f"**{x.split(': ', 1)[0]}:** {html.escape(x.split(': ', 1)[1], quote=False)}" for x in h.lines
    ]
    page = render(d, "html").text
    assert page.index('<div class="answer">') < page.index("<h2>")
    assert all(html.escape(x.split(": ", 1)[1]) in page for x in h.lines)
    doc = to_json(d)
    assert doc["headline"]["lines"] == h.lines and doc["headline"]["text"] == h.text
    assert doc["headline"]["decode_ms_per_token_smallest_ci95"] == [
        round(lo, 4),
        round(hi, 4),
    ]
