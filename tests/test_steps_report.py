"""``tracekit report`` on traces (not a run folder): real engine traces and CPU generate() traces,
the Markdown and HTML reports, the page in headless chromium, headline first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import HF_BATCH, HF_CONTEXTS, ROOT, assert_not_blank, chromium, dump_dom, run_cli, screenshot
from tests.test_steps import ENGINES, SGLANG_DECODE, VLLM_DECODE

pytestmark = pytest.mark.slow  # the real command line on whole traces, seconds a test


def test_report_on_one_foreign_trace(tmp_path: Path) -> None:
    trace = tmp_path / VLLM_DECODE.name
    shutil.copy(VLLM_DECODE, trace)
    r = run_cli("report", str(trace), "--format", "md", "--format", "html")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "steps-report.md").read_text()
    assert md.startswith("# tracekit report")
    answer = md.splitlines()[2]
    assert answer.startswith("**Answer:**") and "cannot be fitted" in answer  # one decode step
    assert "no synchronization check" in md and "a single step" in md
    assert "| 32 | 32 | 55,086 |" in md  # requests, query tokens, KV tokens of the annotation
    assert (tmp_path / "steps-report-plots" / "attention_vs_kv.png").stat().st_size > 1000
    html = (tmp_path / "steps-report.html").read_text()
    assert html.index("Answer:") < html.index("<table") and "<svg" in html
    assert "cannot be fitted" in r.stderr  # the headline is printed too


def test_a_folder_reported_twice_does_not_read_its_own_report(tmp_path: Path) -> None:
    for src in (VLLM_DECODE, SGLANG_DECODE):
        shutil.copy(src, tmp_path / src.name)
    first = run_cli("report", str(tmp_path), "--format", "json", "--format", "md")
    assert first.returncode == 0, first.stderr
    again = run_cli("report", str(tmp_path), "--format", "json", "--format", "md")
    assert again.returncode == 0, again.stderr  # steps-report.json is tracekit's output, not an input
    doc = json.loads((tmp_path / "steps-report.json").read_text())
    assert len(doc["traces"]) == 2, doc["traces"]


def test_report_refuses_a_file_it_did_not_write(tmp_path: Path) -> None:
    trace = tmp_path / SGLANG_DECODE.name
    shutil.copy(SGLANG_DECODE, trace)
    mine = tmp_path / "steps-report.md"
    mine.write_text("my notes\n")
    r = run_cli("report", str(trace))
    assert r.returncode == 2 and "Traceback" not in r.stderr and mine.read_text() == "my notes\n"


def test_report_on_a_folder_of_generate_traces_fits_growth(hf_traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = run_cli("report", str(hf_traces / "sweep"), "--format", "json", "--out", str(out), "--at-kv", "32000")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((ROOT / "tracekit" / "schemas" / "steps-report.schema.json").read_text()))
    assert doc["schema"] == "tracekit.steps-report/1" and len(doc["traces"]) == len(HF_CONTEXTS)
    g = doc["growth"]
    assert g["conclusive"] and g["attention_us_per_1k_kv_ci95"][0] > 0
    assert doc["headline"].startswith(f"From {HF_BATCH * (HF_CONTEXTS[0] + 1):,} to ")
    r = run_cli("report", str(hf_traces / "sweep"), "--format", "md", "--out", str(tmp_path / "r.md"))
    assert r.returncode == 0, r.stderr
    assert "µs per 1,000 KV tokens [" in (tmp_path / "r.md").read_text().splitlines()[2]


def test_folder_report_renders_in_headless_chromium(hf_traces: Path, tmp_path: Path) -> None:
    chromium()
    folder = tmp_path / "traces"
    shutil.copytree(ENGINES, folder)
    for p in hf_traces.glob("*/*.json"):
        shutil.copy(p, folder / p.name)
    r = run_cli("report", str(folder), "--format", "html")
    assert r.returncode == 0, r.stderr
    page = folder / "steps-report.html"
    assert_not_blank(screenshot(page, 900, 1600, tmp_path / "profile"))
    dom, console = dump_dom(page, tmp_path / "profile")
    assert console == []
    assert dom.index("<h1>tracekit report") < dom.index("Answer:") < dom.index("<svg")
    assert "different kinds of device" in dom  # CPU generate() and MI300X engine traces together


def test_traces_of_two_devices_name_no_peak_in_the_headline(tmp_path: Path) -> None:
    from tests.helpers import H100, MI300X, fixture_path

    for name in (H100, MI300X):
        shutil.copy(fixture_path(name), tmp_path / name)
    r = run_cli("report", str(tmp_path), "--format", "md", "--out", "-")
    assert r.returncode == 0, r.stderr
    answer = r.stdout.splitlines()[2]
    assert answer.startswith("**Answer:**") and "roof" not in answer and "TB/s" not in answer
    assert "compared with" in r.stdout  # the limits section says which device's peaks the table uses
