"""Report: fits on real sweeps, the timing-integrity findings, JSON contract, --check, HTML in a browser."""

from __future__ import annotations

import html
import html.parser
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helpers import H100, ROOT, assert_not_blank, chromium, dump_dom, fixture_path, run_cli, screenshot
from tracekit.analysis.timer_gaps import timer_underreads
from tracekit.manifest import read_manifest
from tracekit.report.data import build_report
from tracekit.report.fit import crossing, fit_line
from tracekit.report.renderers import htmlreport as html_renderer
from tracekit.report.renderers import write_report
from tracekit.report.renderers.jsonreport import to_json
from tracekit.trace.read import load_trace

SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "report.schema.json").read_text())


def test_fit_line_recovers_a_known_line() -> None:
    xs = [128.0, 1024.0, 2048.0, 4096.0]
    f = fit_line(xs, [2.0 + 0.001 * x for x in xs])
    assert f is not None
    assert f.intercept == pytest.approx(2.0) and f.slope == pytest.approx(0.001) and f.r2 == pytest.approx(1.0)
    assert fit_line([1.0], [1.0]) is None and fit_line([1.0, 1.0], [1.0, 2.0]) is None
    att = fit_line(xs, [0.1 + 0.0009 * x for x in xs])
    assert att is not None
    # 0.1 + 0.0009x = 0.5 (2 + 0.001x)  ->  x = 0.9 / 0.0004 = 2250
    assert crossing(att, f) == pytest.approx(2250.0)
    assert crossing(fit_line(xs, [0.1] * 4), f) is None  # flat attention never reaches half  # type: ignore[arg-type]


@pytest.mark.slow  # two real sweeps up to 4096 tokens
@pytest.mark.parametrize("which", ["sweep_math", "sweep_sdpa"])
def test_attention_grows_faster_than_the_rest(which: str, request: pytest.FixtureRequest) -> None:
    run: Path = request.getfixturevalue(which)
    data = build_report(run)
    d = data.facts
    fits = d.fits
    att, other, total = fits["attention"], fits["other"], fits["total"]
    print(
        f"{which}: total {total.intercept:.3f} ms + {total.slope * 1000:.3f} ms/1k (R² {total.r2:.3f}); "
        f"attention +{att.slope * 1000:.3f} ms/1k (R² {att.r2:.3f}); rest {other.slope * 1000:+.3f} ms/1k"
    )
    assert att.slope > 0
    assert att.slope > other.slope
    shares = [c.attention_share for c in d.ok_contexts()]
    assert shares[-1] > shares[0]  # attention takes a growing share of each step
    doc = to_json(data)
    jsonschema.validate(doc, SCHEMA)
    if any(f["kind"] == "busy-machine" for f in doc["findings"]):
        # Other work shared the cores (the capture measured it): the fit may be loose, and the report
        # must say so rather than present its figures as clean.
        assert "other work ran beside the capture" in doc["headline"]["text"] or "too busy" in doc["headline"]["text"]
    else:
        assert att.r2 > 0.8
        for c in d.ok_contexts():
            # the fit stays within 35% of every measured point on a quiet 2-core machine
            assert total.at(c.context_tokens) == pytest.approx(c.decode_ms_per_token, rel=0.35)
    for c in d.ok_contexts():
        assert c.decode_ms_per_token and c.bound_ms_per_token and c.decode_ms_per_token > c.bound_ms_per_token * 0.5
    assert {f["kind"] for f in doc["findings"]} >= {
        "attention-growth",
        "decode-fit",
        "attention-half",
        "bandwidth-bound",
    }


def test_diff_of_sdpa_and_math(sweep_math: Path, sweep_sdpa: Path) -> None:
    r = run_cli("diff", str(sweep_sdpa), str(sweep_math), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [c["context_tokens"] for c in doc["contexts"]] == [128, 1024, 2048, 4096]
    c = doc["contexts"][-1]
    assert c["ratio_b_over_a"]["tokens_per_s"] == pytest.approx(c["b"]["tokens_per_s"] / c["a"]["tokens_per_s"])
    r = run_cli("diff", str(sweep_sdpa), str(sweep_math))
    assert r.returncode == 0 and "B/A" in r.stdout


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_unsynchronized_prefill_reading_is_a_finding(small_run: Path, tmp_path: Path) -> None:
    run = _copy_run(small_run, tmp_path / "run")
    m = json.loads((run / "manifest.json").read_text())
    t = m["contexts"][1]["timings"]
    t["prefill_s_unsynced"] = t["prefill_s"] / 10  # what an asynchronous GPU without synchronize() shows
    (run / "manifest.json").write_text(json.dumps(m))
    d = build_report(run)
    found = [f for f in d.findings if f.kind == "unsynchronized-timer"]
    assert len(found) == 1 and found[0].severity == "error"
    msg = found[0].message
    assert "160 tokens" in msg and "10.0x longer" in msg and "torch.cuda.synchronize()" in msg
    assert f"{t['prefill_s']:.3g} s" in msg
    # the untouched context raises nothing
    assert not re.search(r"\b32 tokens\b", " ".join(f.message for f in found))  # not "2,532 tokens/s"


def test_host_device_gap_detector_on_h100_fixture() -> None:
    gaps = timer_underreads(load_trace(fixture_path(H100)))
    step = next(g for g in gaps if g.name == "ProfilerStep#6")
    # The host span ends at ts + dur; its GPU work ends with the GPU-side annotation of the step.
    host_end = 1428625731896.179 + 47151.395
    gpu_end = 1428625746382.662 + 34892.421
    assert step.gap_us == pytest.approx(gpu_end - host_end, abs=1.0)
    assert step.launched == 1198


def test_report_cli_writes_all_formats_and_checks_gate(small_run: Path, tmp_path: Path) -> None:
    run = _copy_run(small_run, tmp_path / "run")
    r = run_cli("report", str(run), "--format", "md", "--format", "html", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert (run / "report.md").exists() and (run / "report.html").exists() and (run / "report.json").exists()
    md = (run / "report.md").read_text()
    assert "R²" in md and "![categories](report-plots/categories.png)" in md
    assert (run / "report-plots" / "categories.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    jsonschema.validate(json.loads((run / "report.json").read_text()), SCHEMA)
    ok = run_cli(
        "report",
        str(run),
        "--format",
        "json",
        "--out",
        "-",
        "--check",
        "tokens_per_s@160>0",
        "--check",
        "attention_share@32<1",
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["schema"] == "tracekit.report/1"
    bad = run_cli(
        "report",
        str(run),
        "--format",
        "json",
        "--out",
        str(tmp_path / "r.json"),
        "--check",
        "tokens_per_s@160>=1e9",
        "--check",
        "attention_share@32<1",
        "--check",
        "tokens_per_s@999>1",
    )
    assert bad.returncode == 1
    lines = [ln for ln in bad.stderr.splitlines() if ln.startswith("tracekit: check failed")]
    assert len(lines) == 2
    assert "tokens_per_s@160>=1e9" in lines[0] and "no context 999" in lines[1]
    assert "Traceback" not in bad.stderr
    malformed = run_cli("report", str(run), "--check", "tokens_per_s>5")
    assert malformed.returncode == 2 and "METRIC@CONTEXT" in malformed.stderr


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_report_on_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    r = run_cli("report", str(tmp_path))
    assert r.returncode == 2 and "no manifest.json" in r.stderr and "Traceback" not in r.stderr


class _Tags(html.parser.HTMLParser):
    """The tags of a page outside its inline SVG plots (matplotlib's own markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.in_svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.in_svg += 1
        if not self.in_svg:
            self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.in_svg -= 1


def _gpu_run(tmp_path: Path, small_run: Path) -> Path:
    """A run whose trace is the H100 fixture: real kernel names full of '<' and '>'."""
    run = _copy_run(small_run, tmp_path / "gpurun")
    m = json.loads((run / "manifest.json").read_text())
    shutil.copy(fixture_path(H100), run / "h100.json.gz")
    m["contexts"][1]["trace"] = "h100.json.gz"
    (run / "manifest.json").write_text(json.dumps(m))
    return run


def test_html_escapes_kernel_names(small_run: Path, tmp_path: Path) -> None:
    page = html_renderer.render(build_report(_gpu_run(tmp_path, small_run))).text
    assert "flash_fwd_kernel&lt;pytorch_flash::Flash_fwd_kernel_traits&lt;" in page
    p = _Tags()
    p.feed(page)
    assert p.tags <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "p",
        "i",
        "ul",
        "li",
        "b",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }


def test_html_report_is_the_same_bytes_twice(small_run: Path) -> None:
    # SVG plots carry a date and random element ids unless the renderer pins them; a report that
    # differs on every render cannot be compared with diff or cached.
    pages = [html_renderer.render(build_report(small_run)).text for _ in range(2)]
    assert "<svg" in pages[0]
    assert pages[0] == pages[1]


def test_html_report_renders_in_headless_chromium(small_run: Path, tmp_path: Path) -> None:
    chromium()
    run = _gpu_run(tmp_path, small_run)
    page = write_report(build_report(run), "html", run / "report.html")[0]
    assert_not_blank(screenshot(page, 420, 1600, tmp_path / "profile"))
    # Console: no errors, no uncaught exceptions (the page has no scripts and needs no network).
    dom, console = dump_dom(page, tmp_path / "profile")
    assert console == [], console
    assert "tracekit report" in dom and "<svg" in dom


# Written into the page after layout: the document's width, and how far each table overflows its box.
_PROBE = (
    "<script>addEventListener('load',()=>{const d=document.documentElement;"
    "const m=document.createElement('pre');m.id='tk-measure';m.textContent=JSON.stringify({"
    "scrollWidth:d.scrollWidth,innerWidth:innerWidth,"
    "tables:[...document.querySelectorAll('.wrap')].map(e=>e.scrollWidth-e.clientWidth)});"
    "document.body.appendChild(m);});</script>"
)


def _measure(page: Path, width: int, profile: Path) -> dict[str, Any]:
    probe = page.with_name(f"probe-{width}.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dom, console = dump_dom(probe, profile, f"--window-size={width},900")
    m = re.search(r'<pre id="tk-measure">([^<]*)</pre>', dom)
    assert m, console
    out: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    return out


def test_html_report_fits_a_1280_px_window(small_run: Path, tmp_path: Path) -> None:
    """No horizontal overflow of the document and no table cut off at 1280 px, with the longest
    names there are (the H100 trace's kernels); in a 600-px window the same probe does see tables
    scroll, so it measures what it claims to."""
    chromium()
    run = _gpu_run(tmp_path, small_run)
    page = write_report(build_report(run), "html", run / "report.html")[0]
    wide = _measure(page, 1280, tmp_path / "profile")
    assert wide["innerWidth"] == 1280
    assert wide["scrollWidth"] <= 1280, wide
    assert wide["tables"] and max(wide["tables"]) <= 1, wide
    narrow = _measure(page, 600, tmp_path / "profile")
    assert max(narrow["tables"]) > 1 and narrow["scrollWidth"] <= 600, narrow


def test_report_intervals_are_the_manifests(small_run: Path) -> None:
    """The report redraws each interval from the manifest's raw steps with the same seed: the
    same run folder always gives the same figures, and capture and report agree."""
    m = read_manifest(small_run)
    d = build_report(small_run)
    again = build_report(small_run)
    for e, c, c2 in zip(m.contexts, d.facts.contexts, again.facts.contexts):
        t = e.timings
        assert c.decode_ms_per_token == pytest.approx(t.decode_ms_per_token, abs=1e-6)
        assert c.decode_ms_per_token_ci95 == pytest.approx(t.decode_ms_per_token_ci95, abs=1e-6)
        assert c.tokens_per_s_ci95 == pytest.approx(t.tokens_per_s_ci95, abs=1e-3)
        assert c.attention_share_ci95 is not None and c.attention_share_ci95 == c2.attention_share_ci95
        lo, hi = c.attention_share_ci95
        assert lo <= (c.attention_share or 0) <= hi
    assert to_json(d) == to_json(again)
