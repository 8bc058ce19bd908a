"""``tracekit advise`` and the report's "What would help", checked against hand computations from a
real capture's own manifest (its decode steps, prefills, model facts and measured bandwidth) and
from datasheet figures, through the real command line."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from tests.helpers import ROOT, capture, chromium, dump_dom, run_cli
from tracekit import stats
from tracekit.stats import decode_seed

SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "advice.schema.json").read_text())
H100_SXM_GBPS = 3350.0  # NVIDIA H100 SXM5 datasheet: 3.35 TB/s
ORIN_AGX_GBPS = 204.8  # NVIDIA Jetson AGX Orin 64GB technical brief: 204.8 GB/s


@pytest.fixture(scope="session")
def small_math(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small run's twin with the other attention implementation."""
    return capture(tmp_path_factory.mktemp("small-math"), [32, 160], 6, profile_steps=3, chunk=64, attn="math")


class Hand:
    """A run's figures computed here from its manifest alone: medians of the kept decode steps,
    least-squares lines with numpy, the model's bytes from its shapes."""

    def __init__(self, run: Path) -> None:
        self.m = json.loads((run / "manifest.json").read_text())
        ok = [c for c in self.m["contexts"] if c["status"] == "ok"]
        self.ctx = [c["context_tokens"] for c in ok]
        self.rounds = []
        for c in ok:
            t = c["timings"]
            w = t["warmup_steps"]
            self.rounds.append([[1000.0 * s for s in r[min(w, len(r) - 1) :]] for r in t["decode_s_by_round"]])
        self.ms = [float(np.median(np.concatenate(r))) for r in self.rounds]
        self.slope, self.intercept = (float(v) for v in np.polyfit(self.ctx, self.ms, 1))
        pre = [float(np.median(c["timings"]["prefill_s_repeats"])) for c in ok]
        self.pre_slope, self.pre_intercept = (float(v) for v in np.polyfit(self.ctx, pre, 1))
        model = self.m["model"]
        # The weights a step reads: every one but the embedding table (one row a token).
        self.weights = float(model["parameter_bytes"] - model["vocab"] * model["hidden"] * model["dtype_bytes"])
        self.kv_per_token = 2.0 * model["layers"] * model["kv_heads"] * model["head_dim"] * model["dtype_bytes"]
        self.bw = self.m["device"].get("measured_bandwidth_gbps")

    def fit_reps(self) -> tuple[np.ndarray, np.ndarray]:
        """The line through each bootstrap replicate of the points (the seeds capture and report use)."""
        reps = np.stack(
            [stats.replicates(r, "median", seed=decode_seed(c)) for r, c in zip(self.rounds, self.ctx)], axis=1
        )
        x = np.asarray(self.ctx, float)
        slopes = np.array([np.polyfit(x, row, 1)[0] for row in reps])
        intercepts = reps.mean(axis=1) - slopes * x.mean()
        return intercepts, slopes


def _advise(*args: str) -> dict[str, Any]:
    r = run_cli("advise", *args, "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


def _one(doc: dict[str, Any], kind: str, contains: str = "") -> dict[str, Any]:
    found = [a for a in doc["advice"] if a["kind"] == kind and contains in a["claim"]]
    assert len(found) == 1, [a["claim"] for a in doc["advice"]]
    return found[0]


def test_advise_on_a_run_matches_hand_computations(small_run: Path) -> None:
    h = Hand(small_run)
    top = max(h.ctx)
    want = 2 * top  # a target the hand line reaches at twice the largest context
    growing = h.slope > 0
    target_tps = 1000.0 / (h.intercept + h.slope * want) if growing else 1000.0 / (1.5 * h.intercept)
    doc = _advise(
        str(small_run),
        "--target-tps", repr(target_tps),
        "--on", "h100-sxm",
        "--generate", "64", "--prompt", str(top), "--keep", "32", "--every", "16",
        "--kv-bits", "16", "--weight-bits", "16",
    )  # fmt: skip

    # Measurement checks lead; the rest is ranked by predicted gain, unranked advice last.
    kinds = [a["kind"] for a in doc["advice"]]
    assert kinds == sorted(kinds, key=lambda k: k != "measurement")
    gains = [a["predicted_gain"] for a in doc["advice"] if a["kind"] != "measurement"]
    ranked = [g for g in gains if g is not None]
    assert ranked == sorted(ranked, reverse=True) and gains[: len(ranked)] == ranked

    # Context budget: where the decode fit reaches the target, with the interval of that context
    # over the fit's bootstrap replicates.
    budget = _one(doc, "context-budget")
    if growing:
        assert budget["figures"]["budget_tokens"] == pytest.approx(want, rel=1e-6, abs=1e-3)
        assert "beyond the measured range: 2.0x the largest measured context" in budget["claim"]
        a_r, s_r = h.fit_reps()
        ms = 1000.0 / target_tps
        # A draw whose line does not rise never reaches the target (unbounded) if it starts below
        # it, and never meets it (0) if it starts above.
        flat = np.where(a_r <= ms, np.inf, 0.0)
        x_r = np.where(s_r > 0, np.maximum(0.0, (ms - a_r) / np.where(s_r > 0, s_r, 1.0)), flat)
        lo, hi = np.percentile(np.where(np.isinf(x_r), 1e300, x_r), [2.5, 97.5])
        got = budget["figures_ci95"]["budget_tokens"]
        assert got[0] == pytest.approx(lo, rel=1e-6, abs=1e-3)
        assert (got[1] is None) == (hi >= 1e299)
        if got[1] is not None:
            assert got[1] == pytest.approx(hi, rel=1e-6, abs=1e-3)
    else:  # a noisy machine made the line fall: no budget, never a number
        assert budget["figures"]["budget_tokens"] is None and budget["claim"].startswith("Inconclusive")

    # Another device: the ceiling is weights + KV cache over the H100's peak; the prediction is
    # the measured step at the share of peak bandwidth measured here.
    rows = {r["context"]: r for r in doc["projection"] if r["variant"] == "on h100-sxm"}
    assert sorted(rows) == h.ctx
    for c, ms_c in zip(h.ctx, h.ms):
        step_bytes = h.weights + h.kv_per_token * c
        assert rows[c]["weight_bytes"] == round(h.weights) and rows[c]["kv_bytes"] == round(h.kv_per_token * c)
        ceiling = H100_SXM_GBPS * 1e9 / step_bytes
        assert rows[c]["ceiling_tokens_per_s"] == pytest.approx(ceiling, rel=1e-6, abs=1e-3)
        if h.bw:
            predicted = min(ceiling, 1000.0 / (ms_c * h.bw / H100_SXM_GBPS))
            assert rows[c]["predicted_tokens_per_s"] == pytest.approx(predicted, rel=1e-6, abs=1e-3)
    measured = {r["context"]: r for r in doc["projection"] if r["variant"] == "as measured"}
    for c, ms_c in zip(h.ctx, h.ms):
        assert measured[c]["measured_tokens_per_s"] == pytest.approx(1000.0 / ms_c, rel=1e-6, abs=1e-3)
    if h.bw:
        dev = _one(doc, "device")
        assert dev["predicted_gain"] == pytest.approx(
            rows[top]["predicted_tokens_per_s"] / (1000.0 / h.ms[-1]) - 1, rel=1e-4, abs=1e-6
        )
        assert dev["figures"]["efficiency"] == pytest.approx(
            (h.weights + h.kv_per_token * top) / (h.bw * 1e9) * 1e3 / h.ms[-1], rel=1e-6, abs=1e-6
        )

    # Precision: the run is float32, so 16 bits halves the cache's (or the weights') bytes.
    kv = _one(doc, "precision", "KV cache at 16 bits")
    before = h.weights + h.kv_per_token * top
    assert kv["figures"]["bytes_before"] == pytest.approx(before)
    assert kv["figures"]["bytes_after"] == pytest.approx(h.weights + h.kv_per_token * top / 2)
    assert kv["predicted_gain"] == pytest.approx(
        before / (h.weights + h.kv_per_token * top / 2) - 1, rel=1e-4, abs=1e-6
    )
    w = _one(doc, "precision", "Weights at 16 bits")
    assert w["predicted_gain"] == pytest.approx(before / (h.weights / 2 + h.kv_per_token * top) - 1, rel=1e-4, abs=1e-6)

    # Without --compare: the exact capture that would measure the other attention implementation.
    cmd = _one(doc, "attention", "No run with another attention implementation")
    assert "--attn math" in cmd["claim"] and "--context 32,160" in cmd["claim"]

    # Progressive generation: 64 tokens from the largest context, against 4 stretches of 16 with
    # 3 resets to the last 32 tokens, each re-prefilling 32 tokens (the prefill line).
    prog = _one(doc, "progressive")
    if not growing:  # a falling line compares no plans
        assert prog["claim"].startswith("Inconclusive") and prog["predicted_gain"] is None
        return

    def decode(n: int, c0: int) -> float:
        return n * h.intercept + h.slope * (n * c0 + n * (n - 1) / 2)

    first = max(0.0, h.pre_intercept + h.pre_slope * top) * 1000
    again = max(0.0, h.pre_intercept + h.pre_slope * 32) * 1000
    plain = first + decode(64, top)
    reset = first + decode(16, top) + 3 * decode(16, 32) + 3 * again
    f = prog["figures"]
    assert f["resets"] == 3
    assert f["plain_total_s"] == pytest.approx(plain / 1000, rel=1e-6, abs=1e-3)
    assert f["reset_total_s"] == pytest.approx(reset / 1000, rel=1e-6, abs=1e-3)
    assert f["saved_s"] == pytest.approx((plain - reset) / 1000, rel=1e-6, abs=1e-3)
    assert prog["predicted_gain"] == pytest.approx(plain / reset - 1, rel=1e-4, abs=1e-6)
    lo, hi = prog["predicted_gain_ci95"]
    assert lo <= prog["predicted_gain"] <= hi


def test_advise_compares_attention_runs(small_run: Path, small_math: Path) -> None:
    a, b = Hand(small_run), Hand(small_math)
    doc = _advise(str(small_run), "--compare", str(small_math))
    adv = _one(doc, "attention", "Attention math instead of sdpa")
    assert adv["predicted_gain"] == pytest.approx(a.ms[-1] / b.ms[-1] - 1, rel=1e-4, abs=1e-6)
    # The interval of the difference, replicate by replicate (independent draws of the two runs).
    ra = stats.replicates(a.rounds[-1], "median", seed=decode_seed(a.ctx[-1]))
    rb = stats.replicates(b.rounds[-1], "median", seed=decode_seed(b.ctx[-1]))
    assert ra is not None and rb is not None
    lo, hi = np.percentile(ra / rb - 1, [2.5, 97.5])
    assert adv["predicted_gain_ci95"] == pytest.approx([lo, hi], abs=1e-4)
    assert not any("No run with another" in x["claim"] for x in doc["advice"])


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_projection_from_model_facts_alone() -> None:
    """The README's case: Mistral-7B at 4 bits on a Jetson AGX Orin, 31 tokens/s at 16 tokens of
    context and 20 at 1,441. By hand: 7,241,732,096 parameters (Mistral-7B-v0.1's published count,
    from its shapes), a 16-bit KV cache of 2·32 layers·8 KV heads·128·2 bytes per token."""
    params = 32000 * 4096 * 2 + 4096 + 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096)
    assert params == 7_241_732_096
    weights = (params - 32000 * 4096) * 4 / 8  # a step reads every weight but the embedding table
    kv_per_token = 2 * 32 * 8 * 128 * 2
    doc = _advise(
        "--preset", "mistral-7b", "--weight-bits", "4", "--on", "jetson-orin-agx",
        "--context", "16,1441", "--measured", "16:31,1441:20",
    )  # fmt: skip
    rows = {r["context"]: r for r in doc["projection"] if r["variant"] == "as measured"}
    for c in (16, 1441):
        assert rows[c]["weight_bytes"] == round(weights)
        assert rows[c]["kv_bytes"] == kv_per_token * c
        assert rows[c]["ceiling_tokens_per_s"] == pytest.approx(
            ORIN_AGX_GBPS * 1e9 / (weights + kv_per_token * c), rel=1e-6, abs=1e-3
        )
    assert rows[16]["measured_tokens_per_s"] == 31 and rows[1441]["measured_tokens_per_s"] == 20
    # The KV cache's growth at peak bandwidth against the measured slowdown in ms per token.
    bound_ms = kv_per_token * (1441 - 16) / (ORIN_AGX_GBPS * 1e9) * 1e3
    share = bound_ms / (1000 / 20 - 1000 / 31)
    assert doc["bound_explains"] == pytest.approx(share, abs=5e-7)  # the document rounds to 6 places
    lever = _one(doc, "attention")
    assert lever["figures"]["bound_explains"] == pytest.approx(share, abs=5e-7)
    assert f"explains {bound_ms:.3g} ms of it, {100 * share:.0f}%" in lever["claim"]
    assert "compute or implementation" in lever["claim"] and "attention kernel" in lever["claim"]
    # The speeds come from the user's own timer: that check leads.
    assert doc["advice"][0]["kind"] == "measurement" and "synchronize" in doc["advice"][0]["claim"]
    # Context budget with no target: 80 % of 31 tokens/s on the line through the two speeds.
    slope = (1000 / 20 - 1000 / 31) / (1441 - 16)
    x = (1000 / (0.8 * 31) - 1000 / 31) / slope + 16
    assert _one(doc, "context-budget")["figures"]["budget_tokens"] == pytest.approx(x, rel=1e-6, abs=1e-3)


def test_report_shows_what_would_help(small_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(small_run, tmp_path / "run"))
    r = run_cli("report", str(run), "--format", "html", "--format", "md", "--format", "json")
    assert r.returncode == 0, r.stderr
    md = (run / "report.md").read_text()
    assert "## What would help" in md
    section = md.split("## What would help", 1)[1]
    assert any(f"(context-budget): {said}" in section for said in ("Keep the context under", "Inconclusive"))
    assert "| context tokens | device | as |" in section
    # The report's advice is the command's, from the same code (tracekit's default plan).
    report_advice = json.loads((run / "report.json").read_text())["advice"]
    assert report_advice == _advise(str(run))
    text = run_cli("advise", str(run), "--format", "md")
    assert text.returncode == 0 and text.stdout.startswith("# What would help")
    assert section.split("\n## ", 1)[0].strip().endswith(text.stdout.strip().split("\n")[-1].strip())
    chromium()
    dom = dump_dom(run / "report.html", tmp_path / "profile")[0]
    assert "<h2>What would help</h2>" in dom
    after = dom.split("<h2>What would help</h2>", 1)[1].split("<h2>", 1)[0]
    assert "context-budget" in after and "<table>" in after and "ceiling tokens/s" in after


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--preset", "mistral-7b", "--on", "jetson-orin-agx", "--measured", "16:x"], "--measured"),
        (["--preset", "mistral-7b", "--on", "nowhere-gpu-9000", "--context", "16"], "pass --on with a name"),
        (["--preset", "mistral-7b", "--context", "16", "--target-tps", "0"], "--target-tps"),
        (["--context", "16"], "--preset NAME or --model-config PATH"),
        (["--preset", "mistral-7b", "--on", "jetson-orin-agx", "--kv-bits", "0"], "--kv-bits"),
        # --device says what a run or traces ran on; without either it was silently dropped.
        (["--preset", "mistral-7b", "--context", "16", "--device", "h100-sxm"], "--device applies to a run or traces"),
        (["--preset", "mistral-7b", "--context", "16", "--peak-bandwidth", "900"], "--peak-bandwidth applies to a run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    r = run_cli("advise", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracekit: error:") and says in lines[0], r.stderr


@pytest.mark.parametrize("tps", ["58", "40"])
def test_a_fit_that_falls_with_context_sets_no_budget(tps: str) -> None:
    """Speeds that rise with context give a falling line: below the target at no context (58) or at
    every context (40). A decode step never gets faster with context, so either budget would be
    the noise's: the advice says inconclusive, names no budget and compares no plans."""
    doc = _advise("--preset", "mistral-7b", "--measured", "1000:50,2000:55,4000:60", "--target-tps", tps)
    budget = _one(doc, "context-budget")
    assert budget["claim"].startswith("Inconclusive: the decode fit falls with context"), budget["claim"]
    assert budget["figures"]["budget_tokens"] is None
    plans = _one(doc, "progressive")  # nor does it compare generation plans
    assert plans["claim"].startswith("Inconclusive: the decode fit falls") and plans["predicted_gain"] is None


def test_a_flat_fit_sets_no_budget_either() -> None:
    """Equal speeds at two contexts give a slope of exactly zero: no more evidence than a falling
    one (a reviewer found "Any context keeps" there, and "Inconclusive" a hair below zero)."""
    doc = _advise("--preset", "mistral-7b", "--measured", "1000:50,4000:50", "--target-tps", "40")
    budget = _one(doc, "context-budget")
    assert budget["claim"].startswith("Inconclusive: the decode fit does not grow with context"), budget["claim"]
    assert budget["figures"]["budget_tokens"] is None


def test_a_budget_past_the_models_maximum_context_says_so() -> None:
    """llama3-8b stops at 8,192 tokens; a line this flat reaches 25 tokens/s only near 85M."""
    doc = _advise("--preset", "llama3-8b", "--measured", "16:30,1441:29.9999", "--target-tps", "25")
    claim = _one(doc, "context-budget")["claim"]
    assert "The model's maximum context is 8,192 tokens, so every context it supports keeps" in claim, claim


def test_a_plan_past_the_models_maximum_context_says_so(small_run: Path) -> None:
    """The model facts know its longest context (the tiny preset's 8,192, in the run's manifest
    too): a plan that runs past it says so; one that stays within it says nothing of it."""
    assert json.loads((small_run / "manifest.json").read_text())["model"]["max_context"] == 8192
    speeds = ["--preset", "tiny", "--measured", "1000:50,2000:45"]
    for where in (speeds, [str(small_run)]):
        past = _one(_advise(*where, "--generate", "10000", "--prompt", "1000", "--every", "2000", "--keep", "500"),
                    "progressive")  # fmt: skip
        assert "runs to context 11,000, past the model's maximum context of 8,192" in past["claim"]
        assert "the reset plan stays within it (at most 3,000)" in past["claim"]
        both = _one(_advise(*where, "--generate", "10000", "--prompt", "1000", "--every", "9000"), "progressive")
        assert "the reset plan to " in both["claim"]
        within = _one(_advise(*where, "--generate", "4000", "--prompt", "1000"), "progressive")
        assert "maximum context" not in within["claim"]


def test_a_config_json_gives_the_models_maximum_context() -> None:
    """A config.json's max_position_embeddings (Qwen3-8B: 40,960) bounds a plan like a preset's."""
    config = str(ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json")
    speeds = ["--model-config", config, "--measured", "1000:50,8000:40"]
    past = _one(_advise(*speeds, "--generate", "50000", "--prompt", "1000", "--every", "8000"), "progressive")
    assert "runs to context 51,000, past the model's maximum context of 40,960" in past["claim"], past["claim"]
    within = _one(_advise(*speeds, "--generate", "4000", "--prompt", "1000"), "progressive")
    assert "maximum context" not in within["claim"]


def test_a_run_refuses_model_flags(small_run: Path) -> None:
    r = run_cli("advise", str(small_run), "--preset", "mistral-7b")
    assert r.returncode == 2 and "--preset" in r.stderr and "Traceback" not in r.stderr


def test_context_budget_interval_is_unbounded_where_draws_find_no_growth() -> None:
    """The interval helper keeps draws with no bound as unbounded (numpy would give NaN)."""
    from tracekit.advice.common import interval

    reps = np.array([100.0] * 900 + [math.inf] * 100)
    assert interval(reps) == (100.0, math.inf)
    assert interval(np.arange(1000.0)) == pytest.approx(stats.interval(np.arange(1000.0)))


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_advise_on_an_engine_trace() -> None:
    """SGLang's decode step of Qwen3-8B on an MI300X (TraceLens, MIT): 32 requests, 32,785 KV
    tokens. By hand from the config's shapes and the MI300X's 5.3 TB/s: the ceiling of a step that
    reads the weights once and 32 caches, and the measured tokens/s (32 tokens a step)."""
    trace = ROOT / "tests" / "data" / "engines" / "sglang-qwen3-8b-decode-mi300x.json.gz"
    config = ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json"
    doc = _advise(str(trace), "--model-config", str(config), "--device", "mi300x", "--on", "jetson-orin-agx")
    cfg = json.loads(config.read_text())
    hidden, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    heads, kv_heads, head_dim = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    per_layer = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2 + 3 * hidden * cfg["intermediate_size"]
    params = 2 * vocab * hidden + layers * (per_layer + 2 * hidden) + hidden
    weights = (params - vocab * hidden) * 2  # bf16, the embedding table aside
    per_seq = round(32785 / 32)  # the context per sequence: KV tokens over requests
    kv = 32 * per_seq * 2 * layers * kv_heads * head_dim * 2
    row = next(r for r in doc["projection"] if r["variant"] == "as measured")
    assert row["context"] == per_seq == 1025
    assert row["weight_bytes"] == round(weights) and row["kv_bytes"] == kv
    assert row["ceiling_tokens_per_s"] == pytest.approx(32 * 5300e9 / (weights + kv), rel=1e-6, abs=1e-3)
    busy_ms = 9.778614  # attention and the rest of the step's device time (tracekit analyze --by step)
    assert row["measured_tokens_per_s"] == pytest.approx(32 * 1000 / busy_ms, rel=1e-5)
    orin = next(r for r in doc["projection"] if r["variant"] == "on jetson-orin-agx")
    assert orin["predicted_tokens_per_s"] == pytest.approx(32 * 1000 / (busy_ms * 5300 / 204.8), rel=1e-5)
    assert any("32 sequences together" in n for n in doc["notes"])
    assert {a["kind"] for a in doc["advice"]} == {"device", "precision"}


def test_advise_on_generate_traces(hf_traces: Path) -> None:
    """HF ``generate()`` traces of a batch of 4 at three prompt lengths (captured here): the decode
    line over the decode steps (context per sequence: KV tokens / 4) and the prefill line over the
    prefill steps (all 4 prompts' tokens), by hand from the step table ``analyze --by step`` prints,
    equal the budget and the reset plan advise gives."""
    sweep = hf_traces / "sweep"
    r = run_cli("analyze", str(sweep), "--by", "step", "--format", "json", "--workers", "1")
    assert r.returncode == 0, r.stderr
    rows = [s for t in json.loads(r.stdout)["traces"] for s in t["steps"]]
    assert {s["requests"] for s in rows} == {4}
    dec = [(s["kv_tokens"] / 4, (s["attention_us"] + s["other_us"]) / 1000) for s in rows if s["phase"] == "decode"]
    pre = [(s["query_tokens"], (s["attention_us"] + s["other_us"]) / 1e6) for s in rows if s["phase"] == "prefill"]
    slope, intercept = (float(v) for v in np.polyfit(*zip(*dec), 1))
    p_slope, p_intercept = (float(v) for v in np.polyfit(*zip(*pre), 1))
    top = max(k for k, _ in dec)
    growing = slope > 0
    target_ms = intercept + slope * 2 * top if growing else 1.5 * intercept
    doc = _advise(
        str(sweep), "--target-itl", repr(target_ms),
        "--generate", "256", "--prompt", "1000", "--keep", "100", "--every", "64",
    )  # fmt: skip
    budget = _one(doc, "context-budget")
    assert f"over {len(dec)} decode steps" in budget["rests_on"][0]
    if growing:
        assert budget["figures"]["budget_tokens"] == pytest.approx(2 * top, rel=1e-6)
        assert "per sequence (4 decoded together)" in budget["claim"]
    else:
        assert budget["figures"]["budget_tokens"] is None
    f = _one(doc, "progressive")["figures"]

    def decode(n: int, c0: int) -> float:
        return n * intercept + slope * (n * c0 + n * (n - 1) / 2)

    first = max(0.0, p_intercept + p_slope * 4 * 1000) * 1000  # every sequence's prompt
    again = max(0.0, p_intercept + p_slope * 4 * 100) * 1000  # every sequence's kept tokens
    plain = first + decode(256, 1000)
    reset = first + decode(64, 1000) + 3 * decode(64, 100) + 3 * again
    assert f["plain_total_s"] == pytest.approx(plain / 1000, rel=1e-4)
    assert f["reset_total_s"] == pytest.approx(reset / 1000, rel=1e-4)


def test_traces_report_shows_what_would_help(hf_traces: Path, tmp_path: Path) -> None:
    """``tracekit report`` on traces carries the same advice as ``tracekit advise`` on them."""
    out = tmp_path / "steps-report.json"
    sweep = hf_traces / "sweep"
    r = run_cli("report", str(sweep), "--format", "json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    advice = json.loads(out.read_text())["advice"]
    jsonschema.validate(advice, SCHEMA)
    mine = _advise(str(sweep))
    assert [a["kind"] for a in advice["advice"]] == [a["kind"] for a in mine["advice"]]
    assert advice["projection"] == mine["projection"] and advice["notes"] == mine["notes"]
    md = tmp_path / "steps-report.md"
    r = run_cli("report", str(sweep), "--format", "md", "--out", str(md))
    assert r.returncode == 0, r.stderr
    assert "## What would help" in md.read_text()


def test_steps_of_no_time_give_no_advice_and_no_crash(run: Path) -> None:
    """A manifest whose decode steps took 0 s (finite, non-negative: the manifest accepts it) is no
    measurement: advice leaves those contexts out instead of dividing by them."""
    m = json.loads((run / "manifest.json").read_text())
    for c in m["contexts"]:
        t = c["timings"]
        t["decode_s_by_round"] = [[0.0] * len(r) for r in t["decode_s_by_round"]]
        t["decode_s_per_token"] = [0.0] * len(t["decode_s_per_token"])
    (run / "manifest.json").write_text(json.dumps(m))
    doc = _advise(str(run))
    assert not any(a["kind"] in ("context-budget", "progressive", "device") for a in doc["advice"])
    assert all(r["measured_tokens_per_s"] is None for r in doc["projection"])


def test_the_compute_lever_needs_the_whole_interval_under_half() -> None:
    """'The growth is compute or implementation' only when the interval's upper end is under half:
    a point estimate of 6 % whose interval reaches 81 % (as a noisy run printed) is inconclusive."""
    from tracekit.advice import attention
    from tracekit.advice.basis import from_facts
    from tracekit.limits.devices import find_device
    from tracekit.limits.model import from_preset

    b = from_facts(from_preset("mistral-7b", dtype_bits=4), find_device("jetson-orin-agx"), [(16, 31), (1441, 20)], "")
    wide = attention.lever(b, 0.06, (0.01, 0.81), 0.91, 17.7)
    assert wide is not None and "inconclusive" in wide.claim and "compute or implementation, not" not in wide.claim
    assert wide.figures_ci95["bound_explains"] == (0.01, 0.81)
    narrow = attention.lever(b, 0.06, (0.01, 0.2), 0.91, 17.7)
    assert narrow is not None and "compute or implementation, not memory traffic" in narrow.claim
    assert attention.lever(b, 0.6, (0.4, 0.8), 0.91, 17.7) is None  # the bytes explain most: other levers


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_speed_above_the_bandwidth_ceiling_is_a_measurement_check() -> None:
    """The README's case without --weight-bits 4: bf16 weights, 14.22 GB a step, at most 14.4
    tokens/s on the Orin's 204.8 GB/s, yet 31 measured. The check leads, names the likely causes,
    and no projection carries over an efficiency above 100 %: the table and the text agree."""
    doc = _advise(
        "--preset", "mistral-7b", "--on", "jetson-orin-agx", "--context", "16,1441", "--measured", "16:31,1441:20",
    )  # fmt: skip
    first = doc["advice"][0]
    assert first["kind"] == "measurement" and first["severity"] == "error"
    for cause in ("--weight-bits", "device", "torch.cuda.synchronize()"):
        assert cause in first["claim"], cause
    rows = {r["context"]: r for r in doc["projection"] if r["variant"] == "as measured"}
    weights_and_kv = rows[16]["weight_bytes"] + rows[16]["kv_bytes"]
    ceiling = ORIN_AGX_GBPS * 1e9 / weights_and_kv
    assert first["figures"]["ceiling_tokens_per_s"] == pytest.approx(ceiling, rel=1e-6)
    assert first["figures"]["measured_tokens_per_s"] == pytest.approx(31) and ceiling < 31
    precision = [a for a in doc["advice"] if a["kind"] == "precision"]
    assert precision
    for adv in precision:
        assert "no projection" in adv["claim"] and "tokens/s if the step keeps" not in adv["claim"], adv["claim"]
    lower = [r for r in doc["projection"] if r["variant"] != "as measured"]
    assert lower and all(r["predicted_tokens_per_s"] is None for r in lower)
    # The README's case (--weight-bits 4: 56 tokens/s allowed at context 16) has no such check.
    ok = _advise(
        "--preset", "mistral-7b", "--weight-bits", "4", "--on", "jetson-orin-agx",
        "--context", "16,1441", "--measured", "16:31,1441:20",
    )  # fmt: skip
    assert not any(a["kind"] == "measurement" and a["severity"] == "error" for a in ok["advice"])
    assert any(r["predicted_tokens_per_s"] is not None for r in ok["projection"] if r["variant"] != "as measured")
