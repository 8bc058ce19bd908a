"""Analysis: attribution on real traces, against independent reference figures (TraceLens, HTA)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helpers import CPU_ONLY, H100, MI300X, ROOT, V100_DDP, V100_RESNET, fixture_param, fixture_path, run_cli
from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.classify import Classifier
from tracekit.analysis.rules import RULES
from tracekit.errors import UserError
from tracekit.manifest import read_manifest
from tracekit.trace.read import load_trace

SGLANG_DECODE = "sglang-qwen3-8b-decode-mi300x.json.gz"
SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "analysis.schema.json").read_text())


def test_h100_window_matches_tracelens_within_0_1_percent() -> None:
    res = analyze_trace(load_trace(fixture_path(H100)), "ProfilerStep#6")
    # Reference figures computed by TraceLens (tests/data/SOURCES.md).
    assert res.window.dur_us == pytest.approx(34892.421, rel=1e-6)
    assert res.busy_us == pytest.approx(31905.0, rel=1e-3)
    assert res.idle_us == pytest.approx(2987.0, rel=1e-3)
    flash = [k for k in res.kernels if k.rule == "flash-attention"]
    assert sum(k.count for k in flash) == 24
    assert sum(k.time_us for k in flash) == pytest.approx(2722.7, rel=1e-3)
    # The attention category is exactly the flash kernels. HF's contiguous copies of Q, K, V and the
    # output inside sdpa_attention_forward are layout copies: neither attention nor cache traffic.
    assert res.categories["attention"].time_us == pytest.approx(2722.7, rel=1e-3)
    assert res.categories["attention"].count == 24
    assert res.categories["kv_cache"].count == 0
    copies = [k for k in res.kernels if k.rule == "attention-fn-layout-copy"]
    assert copies and {k.category for k in copies} == {"elementwise"} and sum(k.count for k in copies) == 96
    assert res.window.source == "device" and res.unlinked_count == 0 and res.graph_count == 0


def test_h100_whole_file_flash_kernels() -> None:
    res = analyze_trace(load_trace(fixture_path(H100)))
    flash = [k for k in res.kernels if k.rule == "flash-attention"]
    assert sum(k.count for k in flash) == 34
    assert sum(k.time_us for k in flash) == pytest.approx(3855.5, rel=1e-3)


def test_mi300x_triton_attention_is_attention() -> None:
    res = analyze_trace(load_trace(fixture_path(MI300X)), "ProfilerStep#6")
    attn_fwd = [k for k in res.kernels if k.name == "attn_fwd"]
    assert attn_fwd and all(k.category == "attention" for k in attn_fwd)
    assert sum(k.count for k in attn_fwd) == 24
    cijk = [k for k in res.kernels if k.name.startswith("Cijk_")]
    gemm = sum(k.time_us for k in cijk if k.category == "gemm")
    # hipBLASLt GEMMs are gemm, except the tiny one inside the rotary-embedding module (scope wins).
    others = [k for k in cijk if k.category != "gemm"]
    assert gemm > 10_000 and all(k.rule == "rope-scope" for k in others)
    assert sum(k.time_us for k in others) < 0.01 * gemm


def test_cpu_only_trace_analyzes() -> None:
    res = analyze_trace(load_trace(fixture_path(CPU_ONLY)))
    assert res.device == "cpu"
    assert res.busy_us > 0 and res.busy_us + res.idle_us == pytest.approx(res.window.dur_us)


def test_own_capture_attributes_attention_and_steps(small_run: Path) -> None:
    m = read_manifest(small_run)
    res = analyze_trace(load_trace(small_run / str(m.contexts[-1].trace)))
    assert res.device == "cpu"
    decode = [p for p in res.phases if p.phase == "decode"]
    prefill = [p for p in res.phases if p.phase == "prefill"]
    assert [p.step for p in decode] == [1, 2, 3] and [p.context_tokens for p in decode] == [161, 162, 163]
    assert len(prefill) == 3
    for p in decode:
        assert p.categories["attention"].time_us > 0 and p.categories["gemm"].time_us > 0
        assert p.categories["kv_cache"].count > 0 and p.categories["rope"].count > 0
        assert 0 <= p.idle_us <= p.span_us
    sdpa = [k for k in res.kernels if "scaled_dot_product" in k.name]
    assert sdpa and all(k.category == "attention" for k in sdpa)


def test_rule_table_order_decides() -> None:
    """A generic GEMM under the attention-core scope is attention; the same GEMM elsewhere is gemm."""
    from tracekit.trace.build import build_trace
    from tracekit.trace.model import Args, Event

    ev = [
        Event(cat="user_annotation", name="tracekit::attention_core", pid=1, tid=1, ts=0, dur=10),
        Event(cat="cpu_op", name="aten::bmm", pid=1, tid=1, ts=1, dur=5),
        Event(cat="cuda_runtime", name="cudaLaunchKernel", pid=1, tid=1, ts=2, dur=1, args=Args(correlation=1)),
        Event(cat="cpu_op", name="aten::mm", pid=1, tid=1, ts=20, dur=5),
        Event(cat="cuda_runtime", name="cudaLaunchKernel", pid=1, tid=1, ts=21, dur=1, args=Args(correlation=2)),
        Event(cat="kernel", name="ampere_sgemm_128x64_nn", pid=0, tid=7, ts=3, dur=4, args=Args(correlation=1)),
        Event(cat="kernel", name="ampere_sgemm_128x64_nn", pid=0, tid=7, ts=22, dur=4, args=Args(correlation=2)),
        Event(cat="kernel", name="flash_fwd_kernel", pid=0, tid=7, ts=30, dur=2),  # unlinked (CUDA graph)
    ]
    t = build_trace("hand", ev)
    clf = Classifier(t)
    links = t.link.tolist()
    got = [(clf.classify(d.name, n).category, clf.classify(d.name, n).rule) for d, n in zip(t.device, links)]
    assert got == [("attention", "attention-core-scope"), ("gemm", "gemm"), ("attention", "flash-attention")]
    # Without the scope rule the same kernel falls through to the GEMM family: the table is the policy.
    plain = Classifier(t, tuple(r for r in RULES if r.name != "attention-core-scope"))
    assert plain.classify(t.device[0].name, links[0]).category == "gemm"


def test_unknown_window_lists_available_names() -> None:
    with pytest.raises(UserError, match="no annotation named 'ProfilerStep#99'.*ProfilerStep#6"):
        analyze_trace(load_trace(fixture_path(H100)), "ProfilerStep#99")


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_cli_json_contract_and_csv() -> None:
    p = fixture_path(H100)
    r = run_cli("analyze", str(p), "--window", "ProfilerStep#6", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    tr = doc["traces"][0]
    assert tr["device"] == "gpu" and tr["window"]["name"] == "ProfilerStep#6"
    assert tr["categories"]["attention"]["count"] == 24
    r = run_cli("analyze", str(p), "--window", "ProfilerStep#6", "--format", "csv", "--by", "kernel")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {"trace", "kernel", "category", "rule", "count", "time_us"} <= set(rows[0])
    assert sum(int(x["count"]) for x in rows if x["category"] == "attention") == 24
    assert "kernels" not in tr  # rows only when asked for


def _analyze_json(*args: str) -> dict[str, Any]:
    r = run_cli("analyze", *args, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


def test_json_of_a_run_folder_matches_schema(small_run: Path) -> None:
    """A run folder is read over its decode steps: the window is the phase's, source "phase"."""
    doc = _analyze_json(str(small_run))
    assert {t["window"]["source"] for t in doc["traces"]} == {"phase"}


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_json_of_window_all_by_step_and_by_kernel_matches_schema() -> None:
    h100, sglang = str(fixture_path(H100)), str(ROOT / "tests" / "data" / "engines" / SGLANG_DECODE)
    doc = _analyze_json(h100, "--window", "ProfilerStep#*", "--window-all")
    assert doc["traces"][0]["window"]["source"] == "sum"
    assert _analyze_json(sglang, "--by", "step")["traces"][0]["steps"]
    assert _analyze_json(h100, "--by", "kernel")["traces"][0]["kernels"]


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_cli_json_by_kernel_has_every_kernel_row() -> None:
    """``--by kernel --format json``: each trace lists its kernel rows, which add up to its
    categories (every item of device work in exactly one row), as the CSV gives them."""
    p = fixture_path(H100)
    r = run_cli("analyze", str(p), "--window", "ProfilerStep#6", "--format", "json", "--by", "kernel")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    tr = doc["traces"][0]
    rows = tr["kernels"]
    assert sum(k["count"] for k in rows) == sum(c["count"] for c in tr["categories"].values())
    assert sum(k["time_us"] for k in rows) == pytest.approx(
        sum(c["time_us"] for c in tr["categories"].values()), abs=0.01
    )
    assert sum(k["count"] for k in rows if k["category"] == "attention") == 24
    assert [k["time_us"] for k in rows] == sorted((k["time_us"] for k in rows), reverse=True)
    csv_out = run_cli("analyze", str(p), "--window", "ProfilerStep#6", "--format", "csv", "--by", "kernel").stdout
    assert len(list(csv.DictReader(io.StringIO(csv_out)))) == len(rows)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_cli_explain_names_the_rule() -> None:
    r = run_cli("analyze", str(fixture_path(MI300X)), "--explain", "^attn_fwd$")
    assert r.returncode == 0, r.stderr
    assert "triton-attention" in r.stdout and "attention" in r.stdout
    r = run_cli("analyze", str(fixture_path(MI300X)), "--explain", "(")
    assert r.returncode == 2 and "not a valid regular expression" in r.stderr


def test_cli_by_step_on_own_capture(small_run: Path) -> None:
    trace = next(small_run.glob("context-000160.pt.trace.json.gz"))
    r = run_cli("analyze", str(trace), "--by", "step", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    decode = [x for x in rows if x["phase"] == "decode"]
    assert [x["context_tokens"] for x in decode] == ["161", "162", "163"]


# --- against HolisticTraceAnalysis ----------------------------------------------------------------


def _hta_kernel_sums(path: Path, tmp: Path, rank_missing: bool) -> dict[str, float]:
    hta = pytest.importorskip("hta.trace_analysis", reason="needs the [hta] extra")
    from tracekit.analysis.hta_bridge import _add_rank

    dst = tmp / "rank-0.json.gz"
    if rank_missing:
        _add_rank(path, dst)
    else:
        dst.symlink_to(path.resolve())
    # HTA rounds nanosecond timestamps to whole microseconds unless told not to; compare exact figures.
    os.environ["HTA_DISABLE_NS_ROUNDING"] = "1"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            analysis = hta.TraceAnalysis(trace_dir=str(tmp))
            _, kdf = analysis.get_gpu_kernel_breakdown(
                visualize=False, duration_ratio=1.0, num_kernels=1_000_000, include_memory_kernels=True
            )
    finally:
        os.environ.pop("HTA_DISABLE_NS_ROUNDING", None)
    return {str(r["name"]): float(r["sum (us)"]) for _, r in kdf.iterrows()}


@pytest.mark.slow  # HolisticTraceAnalysis loads the whole trace into pandas
@pytest.mark.parametrize("name", [fixture_param(V100_DDP), V100_RESNET])
def test_per_kernel_totals_agree_with_hta(tmp_path: Path, name: str) -> None:
    path = fixture_path(name)
    trace = load_trace(path)
    theirs = _hta_kernel_sums(path, tmp_path, trace.rank is None)
    # HTA counts the kernels launched by CPU work before the last ProfilerStep begins; so do we here.
    last = max(h.ts for h in trace.host if h.name.startswith("ProfilerStep#"))
    ours: dict[str, float] = defaultdict(float)
    for d, n in zip(trace.device, trace.link.tolist()):
        if n >= 0 and trace.host[n].ts < last:
            ours[d.name] += d.dur
    assert len(theirs) > 40
    for kernel, total in theirs.items():
        assert ours[kernel] == pytest.approx(total, rel=1e-3), kernel


@pytest.mark.slow  # HolisticTraceAnalysis, three traces
def test_hta_bridge_adds_breakdowns_and_skips_what_hta_cannot_do() -> None:
    pytest.importorskip("hta.trace_analysis", reason="needs the [hta] extra")
    r = run_cli("analyze", str(fixture_path(V100_RESNET)), "--hta", "--format", "json")
    assert r.returncode == 0, r.stderr
    hta = json.loads(r.stdout)["traces"][0]["hta"]
    assert hta["temporal_breakdown"][0]["kernel_time(us)"] > 0
    assert hta["idle_time_breakdown"][0]["idle_category"] in ("host_wait", "kernel_wait", "other")
    assert hta["kernel_launch_stats"][0]["gpu_duration"] >= 0
    # One profiled step: HTA's temporal breakdown asserts (it drops the last step); one line, analysis goes on.
    r = run_cli("analyze", str(fixture_path(H100)), "--window", "ProfilerStep#6", "--hta", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)["traces"][0]
    assert doc["categories"]["attention"]["count"] == 24
    assert isinstance(doc["hta"]["idle_time_breakdown"], list)
    if "error" in doc["hta"]["temporal_breakdown"]:
        assert "HTA temporal_breakdown failed" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("analyze", str(fixture_path(CPU_ONLY)), "--hta", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert "HTA skipped" in r.stderr and "CPU-only" in r.stderr
    assert json.loads(r.stdout)["traces"][0]["hta"] == {"skipped": "cpu-only trace"}
