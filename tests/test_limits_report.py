"""The report's distance to the limit on tracekit's own CPU runs: attention's and the whole decode
step's achieved bandwidth at each context against the bandwidth capture measured, worked from the
manifest; the roofline drawn and seen in headless chromium; the truth check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import ROOT, chromium, dump_dom, roofline_pixels, run_cli
from tracekit.manifest import read_manifest
from tracekit.report.data import build_report
from tracekit.report.renderers import write_report
from tracekit.report.renderers.jsonreport import to_json

QWEN3_8B = ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json"


def test_attention_and_step_bandwidth_against_the_measured(small_run: Path) -> None:
    m = read_manifest(small_run)
    bw = m.device.measured_bandwidth_gbps
    assert bw and bw > 0, "the capture measured no bandwidth"
    data = build_report(small_run)
    d = data.facts
    assert d.roof is not None and d.roof.measured and d.roof.bandwidth_tb_s == pytest.approx(bw / 1000)
    model = m.model
    elem = model.dtype_bytes or 4
    per_token = 2 * model.layers * model.kv_heads * model.head_dim * elem  # type: ignore[operator]
    q_and_o = 2 * model.heads * model.head_dim * elem * model.layers  # type: ignore[operator]
    seen = 0
    for e, c in zip(m.contexts, d.contexts):
        if c.status != "ok" or c.attention_ms_per_token is None:
            continue
        per_round = len(e.timings.decode_s_by_round[0])
        ctx = round(e.context_tokens + per_round / 2)  # the middle of the decoded tokens
        att_bytes = per_token * ctx + q_and_o
        assert c.attention is not None and c.attention.bytes == att_bytes
        tb_s = att_bytes / (c.attention_ms_per_token / 1e3) / 1e12
        assert c.attention.tb_s == pytest.approx(tb_s, rel=1e-9)
        assert c.attention.bandwidth_share == pytest.approx(tb_s / (bw / 1000), rel=1e-9)
        # The whole step: every weight but the embedding table, plus attention, over the timed step.
        assert c.step is not None and c.decode_ms_per_token is not None
        assert c.step.bytes > att_bytes + (model.parameter_bytes or 0) - model.vocab * model.hidden * elem  # type: ignore[operator]
        assert c.step.tb_s == pytest.approx(c.step.bytes / (c.decode_ms_per_token / 1e3) / 1e12, rel=1e-9)
        assert c.ceiling_tokens_per_s and c.ceiling_tokens_per_s > 0
        seen += 1
    assert seen >= 2
    doc = to_json(data)
    jsonschema.validate(doc, json.loads((ROOT / "tracekit" / "schemas" / "report.schema.json").read_text()))
    assert doc["device"]["peak_bandwidth_tb_s"] == pytest.approx(bw / 1000)
    assert "measured during capture" in doc["device"]["source"]
    assert doc["model_facts"]["facts"]["layers"]["source"] == "manifest"
    last = [c for c in doc["contexts"] if c["attention_achieved_tb_s"] is not None][-1]
    assert last["attention_bytes"] > 0 and last["step_achieved_tb_s"] > 0
    assert "attention read the KV cache at" in doc["headline"]["text"]
    assert "capture measured on this machine" in doc["headline"]["text"]


def test_a_device_flag_and_a_config_change_the_roof_and_facts(small_run: Path) -> None:
    d = build_report(small_run, device="h100-sxm", model_config=QWEN3_8B).facts
    assert d.roof is not None and d.roof.key == "h100-sxm" and d.roof.bandwidth_tb_s == 3.35
    assert d.shape is not None and d.shape.layers == 36 and d.shape.source["layers"] == "config.json"
    c = [c for c in d.ok_contexts() if c.ceiling_tokens_per_s][-1]
    # Qwen3-8B on an H100 SXM: (15.14 GB of weights + 147,456 B a token of KV) / 3.35 TB/s.
    ctx = round(c.context_tokens + len(read_manifest(small_run).contexts[-1].timings.decode_s_by_round[0]) / 2)
    assert c.ceiling_tokens_per_s == pytest.approx(3.35e12 / (d.shape.step_weight_bytes() + 147_456 * ctx), rel=1e-9)


def test_above_peak_is_a_finding(small_run: Path) -> None:
    """A CPU run compared with a 1 GB/s 'device': its achieved figures are impossible, and said so."""
    d = build_report(small_run, peak_bandwidth=0.001)
    kinds = [f for f in d.findings if f.kind == "above-peak"]
    assert kinds and "impossible" in kinds[0].message and "wrong device" in kinds[0].message
    assert "which is impossible" in (doc := to_json(d))["headline"]["text"]
    assert any(c["attention_above_peak"] for c in doc["contexts"])


def test_report_flags_are_one_line(small_run: Path) -> None:
    for args, needle in (
        (["--device", "h1OO"], "--device"),
        (["--device", ""], "--device ''"),
        (["--device", "h200x"], "closest: h200"),
        (["--model-config", "/no/config.json"], "--model-config"),
        # --at-kv predicts from engine traces' steps; a run's report has its own predictions.
        (["--at-kv", "32000"], "--at-kv predicts from engine traces' steps"),
    ):
        done = run_cli("report", str(small_run), "-f", "json", "-o", "-", *args)
        assert done.returncode == 2 and needle in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_roofline_in_the_html_report_seen_in_chromium(small_run: Path, tmp_path: Path) -> None:
    """The roofline is in the page, and drawn: a screenshot of it alone shows the roof (dark),
    the attention points (red) and the GEMM points (blue)."""
    chromium()
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    page = write_report(build_report(run), "html", run / "report.html")[0]
    text = page.read_text(encoding="utf-8")
    assert 'id="plot-roofline"' in text and "Distance to the limit" in text
    red, blue, dark = roofline_pixels(text, tmp_path)
    assert red > 30 and blue > 30 and dark > 500, (red, blue, dark)
    dom, console = dump_dom(page, tmp_path / "profile")
    assert console == []
    assert 'id="plot-roofline"' in dom


def test_analyze_by_step_on_an_own_trace_takes_the_runs_manifest(small_run: Path) -> None:
    """A trace of a tracekit run, analyzed alone: the model facts and the measured bandwidth come
    from its run's manifest; each decode step's attention bytes from its annotation's context."""
    m = read_manifest(small_run)
    trace = small_run / str(m.contexts[-1].trace)
    done = run_cli("analyze", str(trace), "--by", "step", "--format", "json", "--workers", "1")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["model_facts"]["facts"]["kv_heads"]["source"] == "manifest"
    assert "measured during capture" in doc["device"]["source"]
    model = m.model
    elem = model.dtype_bytes or 4
    per_token = 2 * model.layers * model.kv_heads * model.head_dim * elem  # type: ignore[operator]
    q_and_o = 2 * model.heads * model.head_dim * elem * model.layers  # type: ignore[operator]
    decode = [s for s in doc["traces"][0]["steps"] if s["phase"] == "decode"]
    assert decode
    for s in decode:
        assert s["attention_bytes"] == per_token * s["kv_tokens"] + q_and_o
        if s["attention_us"] > 0:
            assert s["attention_achieved_tb_s"] == pytest.approx(
                s["attention_bytes"] / s["attention_us"] / 1e6, rel=1e-4
            )
        assert s["step_achieved_tb_s"] is not None and s["step_achieved_tb_s"] > 0
