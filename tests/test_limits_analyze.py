"""Achieved bandwidth and FLOP/s on real engine traces (TraceLens's MI300X steps), worked by hand
and compared with what ``tracekit analyze`` prints; bad limit flags are one line, exit 2."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helpers import ROOT, run_cli
from tracekit.fleet.task import TaskOptions, TracePartial, analyze_file
from tracekit.limits.devices import find_device
from tracekit.limits.model import from_config
from tracekit.limits.roofline import attention_work, qk_pairs
from tracekit.limits.steps import _pairs

ENGINES = ROOT / "tests" / "data" / "engines"
DECODE = ENGINES / "sglang-qwen3-8b-decode-mi300x.json.gz"
EXTEND = ENGINES / "sglang-qwen3-8b-extend-mi300x.json.gz"
MIXED = ENGINES / "vllm-gptoss-mixed-piecewise-mi300x.json.gz"
QWEN3_8B = ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json"


SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "analysis.schema.json").read_text())


def _analyze(*args: str) -> dict[str, Any]:
    done = run_cli("analyze", *args, "--format", "json", "--workers", "1")
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    jsonschema.validate(out, SCHEMA)
    return out


def _kernel_us(path: Path, needle: str) -> float:
    """Summed duration of the kernels whose name holds ``needle``, read straight from the file."""
    events = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    return sum(e["dur"] for e in events if e.get("cat") == "kernel" and needle in e.get("name", ""))


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_sglang_qwen3_8b_decode_on_mi300x_by_hand() -> None:
    """32 requests, 32,785 KV tokens in the step (its annotation), Qwen3-8B (36 layers, 8 KV heads,
    head dim 128, bf16), on an MI300X (5.3 TB/s, AMD's data sheet)."""
    kv_tokens, requests, layers, kv_heads, head_dim, heads, elem = 32_785, 32, 36, 8, 128, 32, 2
    kv_bytes = kv_tokens * layers * 2 * kv_heads * head_dim * elem  # K and V, every layer
    assert kv_bytes == 4_834_344_960
    q_and_o = 2 * requests * heads * head_dim * elem * layers  # one query token a request, read and written
    attention_bytes = kv_bytes + q_and_o
    assert attention_bytes == 4_853_219_328
    # Attention's time: the paged-attention kernel and its reduce, 36 each (one a layer).
    att_us = _kernel_us(DECODE, "paged_attention_ll4mi")
    assert att_us == pytest.approx(2127.869, abs=1e-3)
    tb_s = attention_bytes / (att_us * 1e-6) / 1e12
    share = tb_s / 5.3
    assert tb_s == pytest.approx(2.2808, abs=1e-4) and share == pytest.approx(0.4303, abs=1e-4)
    flops = 4 * heads * head_dim * kv_tokens * layers  # QK^T and PV, 2 * head_dim each a pair

    doc = _analyze(str(DECODE), "--by", "step", "--model-config", str(QWEN3_8B))
    assert doc["device"]["key"] == "mi300x" and doc["device"]["peak_bandwidth_tb_s"] == 5.3
    assert "amd-instinct-mi300x-data-sheet" in doc["device"]["source"]
    assert doc["model_facts"]["facts"]["kv_heads"] == {"value": 8, "source": "config.json"}
    (step,) = doc["traces"][0]["steps"]
    assert (step["requests"], step["query_tokens"], step["kv_tokens"]) == (32, 32, 32_785)
    assert step["attention_us"] == pytest.approx(att_us, abs=1e-3)
    assert step["attention_bytes"] == attention_bytes
    assert step["attention_flops"] == flops
    assert step["attention_achieved_tb_s"] == pytest.approx(tb_s, abs=1e-6)
    assert step["attention_peak_share"] == pytest.approx(share, abs=1e-4)
    assert step["attention_bound"] == "memory" and step["attention_above_peak"] is False
    # The step: every weight but the embedding (Qwen3-8B's 36 layers of Q/K/V/O, gated MLP and
    # norms, and the output head), each token's activations in and out of every projection and
    # the head, plus attention.
    weights = 2 * (36 * (4096 * 32 * 128 * 2 + 4096 * 8 * 128 * 2 + 3 * 4096 * 12288 + 2 * 4096) + 4096 + 151_936 * 4096)
    per_layer = 4096 + (32 + 2 * 8) * 128 + 32 * 128 + 3 * 4096 + 3 * 12288  # in and out of Q/K/V, O, gate/up, down
    activations = 2 * 32 * (36 * per_layer + 4096 + 151_936)
    assert step["step_bytes"] == weights + activations + attention_bytes
    busy_us = 9773.0  # the device's busy time in the step (its kernels' union; idle left out)
    assert step["step_achieved_tb_s"] == pytest.approx(step["step_bytes"] / busy_us / 1e6, rel=1e-3)
    assert doc["traces"][0]["limit_findings"] == []


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_model_facts_from_the_extend_steps_shapes_match_the_config() -> None:
    """Without a config: heads, KV heads, head dim and dtype from aiter's mha_batch_prefill Input
    Dims, layers from its count in the step, weights from the outermost GEMM operators."""
    part = analyze_file(str(EXTEND), TaskOptions(steps=True, limits=True, kernels="all"))
    assert isinstance(part, TracePartial) and part.facts is not None
    f = part.facts
    assert f.device_name == "AMD Instinct MI300X"
    assert (f.heads, f.kv_heads, f.head_dim, f.dtype, f.layers) == (32, 8, 128, "bf16", 36)
    gemm_weights = 36 * (4096 * 32 * 128 * 2 + 4096 * 8 * 128 * 2 + 3 * 4096 * 12288) + 151_936 * 4096
    assert f.step_weight_bytes == 2 * gemm_weights
    m = from_config(QWEN3_8B)
    assert m.step_weight_bytes() - f.step_weight_bytes == 2 * (36 * 2 * 4096 + 4096)  # the norms, not GEMMs
    doc = _analyze(str(EXTEND), "--by", "step")
    facts = doc["model_facts"]["facts"]
    assert facts["layers"]["value"] == 36 and "attention operators in one step" in facts["layers"]["source"]
    (step,) = doc["traces"][0]["steps"]
    # 15 requests of 1,024 new tokens: each attends causally within its chunk.
    assert (step["requests"], step["query_tokens"], step["kv_tokens"]) == (15, 15_360, 15_360)
    pairs = 15 * (1024 * 1024 - 1024 * 1023 // 2)
    assert _pairs(15, 15_360, 15_360) == pairs
    assert step["attention_flops"] == 4 * 32 * 128 * pairs * 36
    assert step["attention_bound"] == "compute"
    # The step's GEMMs from their operators' Input Dims: Q/K/V (fused, N = 6,144), O, gate/up
    # (fused, N = 24,576) and down over 15,360 tokens in 36 layers, and the head over the last
    # token of each of the 15 requests only (which the model's count cannot know).
    per_layer = 4096 * 6144 + 4096 * 4096 + 4096 * 24576 + 12288 * 4096
    assert step["gemm_source"] == "trace shapes"
    assert step["gemm_flops"] == 2 * 15_360 * per_layer * 36 + 2 * 15 * 4096 * 151_936


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_gemm_kernel_rows_get_achieved_figures_from_their_operators() -> None:
    doc = _analyze(str(EXTEND), "--by", "kernel")
    rows = doc["traces"][0]["kernels"]
    gemms = [r for r in rows if r["category"] == "gemm" and r["achieved_tflops"] is not None]
    assert gemms, "no GEMM kernel got its operator's shapes"
    for r in gemms:
        assert r["flops"] > 0 and 0 < r["peak_share"] < 1 and r["bound"] in ("memory", "compute")
        assert r["achieved_tflops"] == pytest.approx(r["flops"] / (r["time_us"] * 1e-6) / 1e12, rel=1e-3)
    # Paged attention has no per-kernel work (its KV length is the step's, not the kernel's).
    att = [r for r in rows if r["category"] == "attention"]
    assert att and all(r["achieved_tb_s"] is None for r in att)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_the_wrong_device_is_a_finding_not_a_share_above_100_percent() -> None:
    """On a Jetson's 204.8 GB/s, the MI300X step's attention would have read 2.28 TB/s: impossible."""
    doc = _analyze(str(DECODE), "--by", "step", "--model-config", str(QWEN3_8B), "--device", "jetson-orin-agx")
    (step,) = doc["traces"][0]["steps"]
    assert step["attention_above_peak"] is True
    (finding, *_) = doc["traces"][0]["limit_findings"]
    assert "impossible" in finding and "wrong device" in finding and "wrong model facts" in finding
    table = run_cli(
        "analyze", str(DECODE), "--by", "step", "--model-config", str(QWEN3_8B), "--device", "jetson-orin-agx",
        "--workers", "1", "--format", "csv",
    )  # fmt: skip
    assert table.returncode == 0 and "above peak" in table.stdout
    assert "tracekit: finding:" in table.stderr and "impossible" in table.stderr


def test_without_model_facts_the_step_says_which_flag_to_pass() -> None:
    # The decode step is replayed from a graph: no operator shapes, so no model facts.
    done = run_cli("analyze", str(DECODE), "--by", "step", "--format", "json", "--workers", "1")
    assert done.returncode == 0
    doc = json.loads(done.stdout)
    assert doc["model_facts"] is None and doc["traces"][0]["steps"][0]["attention_bytes"] is None
    assert "--model-config" in done.stderr


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--device", "mi300"], "--device"),
        (["--device", "tpu-v5e"], "--peak-bandwidth"),
        (["--device", "h200x"], "closest: h200"),
        (["--device", "h100-sxm;rm"], "closest: h100-sxm"),
        (["--device", ""], "--device ''"),
        (["--peak-bandwidth", "-3"], "--peak-bandwidth"),
        (["--peak-flops", "nan"], "--peak-flops"),
        (["--model-config", "/nonexistent/config.json"], "--model-config"),
    ],
)
def test_bad_limit_flags_are_one_line(args: list[str], needle: str) -> None:
    done = run_cli("analyze", str(DECODE), "--by", "step", *args, "--workers", "1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_an_absurd_config_names_its_field(tmp_path: Path) -> None:
    cfg = json.loads(QWEN3_8B.read_text())
    cfg["num_key_value_heads"] = 0
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    done = run_cli("analyze", str(DECODE), "--by", "step", "--model-config", str(p), "--workers", "1")
    assert done.returncode == 2 and "num_key_value_heads" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--top", "3"], "--top 3 keeps the longest kernels of --by kernel"),
        (["--by", "step", "--top", "3"], "--top 3 keeps the longest kernels of --by kernel"),
        (["--at-kv", "32000"], "--at-kv 32000 predicts from the decode steps of --by step"),
        (["--by", "kernel", "--at-kv", "32000"], "--at-kv 32000 predicts from the decode steps of --by step"),
    ],
)
def test_a_flag_of_another_grouping_is_an_error_not_ignored(args: list[str], needle: str) -> None:
    done = run_cli("analyze", str(DECODE), *args, "--workers", "1")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracekit: error: ") and needle in lines[0], done.stderr


def test_limit_flags_need_a_step_or_kernel_table() -> None:
    done = run_cli("analyze", str(DECODE), "--device", "mi300x", "--workers", "1")
    assert done.returncode == 2 and "--by step" in done.stderr


def test_pairs_and_sliding_windows_by_hand() -> None:
    assert qk_pairs(32, 32_785) == 32_785  # decode: one query a request
    # vLLM's detailed annotation: Σq·k and Σq² give the causal pairs exactly.
    assert qk_pairs(3, 10, sum_q_kv=2 * 6 + 1 * 4, sum_q_sq=4 + 1) == 16 - (5 - 3) / 2
    cfg = json.loads(QWEN3_8B.read_text())
    m = from_config(QWEN3_8B)
    import dataclasses

    slid = dataclasses.replace(m, sliding_window=128, sliding_layers=18)
    w = attention_work(slid, query_tokens=4, kv_tokens=4 * 1000, requests=4)
    per_layer_token = 2 * 8 * 128 * 2
    assert w.bytes == per_layer_token * (18 * 4000 + 18 * 4 * 128) + 2 * 4 * 32 * 128 * 2 * 36
    assert cfg["num_hidden_layers"] == 36
    assert find_device("mi300x").peak_tflops["bf16"] == 1307.4


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_an_unnamed_rocm_device_is_told_by_its_properties() -> None:
    """vLLM's MI300X traces leave deviceProperties.name empty: gfx 9.4, 304 CUs and 192 GiB name it."""
    from tracekit.limits.devices import device_from_props

    mi300x = device_from_props(9, 4, 304, 206_141_652_992)
    assert mi300x is not None and mi300x.key == "mi300x"
    assert device_from_props(9, 4, 304, 8 * 2**30) is None  # no such MI300
    doc = _analyze(str(MIXED), "--by", "step")
    assert doc["device"]["key"] == "mi300x" and "deviceProperties" in doc["device"]["source"]
    facts = doc["model_facts"]["facts"]
    # gpt-oss: 24 layers, 64 heads, 8 KV heads, head dim 64, hidden 2880 (its config.json)
    got = tuple(facts[k]["value"] for k in ("layers", "heads", "kv_heads", "head_dim", "hidden"))
    assert got == (24, 64, 8, 64, 2880)
    (step,) = doc["traces"][0]["steps"]
    assert step["attention_peak_share"] is not None and not step["attention_above_peak"]


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_each_engine_trace_keeps_its_own_model_facts_among_others() -> None:
    """The four engine traces together (two models: Qwen3-8B and gpt-oss) give each trace's steps
    the figures it gets alone: no trace borrows another's shapes (the gpt-oss full-graph decode
    once read 11.2 TB/s, 212% of peak, on Qwen3-8B's facts; the mixed step 793 TFLOP/s, not 529)."""
    paths = sorted(ENGINES.glob("*.json.gz"))
    assert len(paths) == 4
    together = _analyze(*map(str, paths), "--by", "step")
    assert not any(t["limit_findings"] for t in together["traces"])  # nothing above the device's peak
    notes = together["limit_notes"]
    assert any("2 different models" in n and "its own shapes" in n for n in notes), notes
    assert any(n.startswith("no model facts for ") and "vllm-gptoss-decode-fullgraph" in n for n in notes), notes
    assert together["model_facts"] is None  # no one model for all of them
    for t in together["traces"]:
        alone = _analyze(t["path"], "--by", "step")["traces"][0]
        assert t["steps"] == alone["steps"], t["path"]
    mixed = next(t for t in together["traces"] if t["path"].endswith(MIXED.name))["steps"][0]
    assert 520 < mixed["attention_achieved_tflops"] < 540  # 529 on gpt-oss's own shapes (docs/limits.md)
    # --model-config names one model for all of them, as before.
    forced = _analyze(*map(str, paths), "--by", "step", "--model-config", str(QWEN3_8B))
    assert forced["model_facts"]["name"] and not any("different models" in n for n in forced["limit_notes"])
