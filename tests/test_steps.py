"""Per-step context and growth: the engines' own step annotations on their real traces, HF
``generate()`` traces captured here on the CPU (record_shapes), bad annotations, many traces.

The engine traces are TraceLens's public test traces (tests/data/engines/SOURCES.md): one step each,
recorded by vLLM and SGLang on an MI300X. The figures they must give are the annotations' own.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.helpers import ROOT, run_cli
from tracekit.annotations import STEP_READERS, parse_phase

ENGINES = ROOT / "tests" / "data" / "engines"
VLLM_DECODE = ENGINES / "vllm-gptoss-decode-fullgraph-mi300x.json.gz"
VLLM_MIXED = ENGINES / "vllm-gptoss-mixed-piecewise-mi300x.json.gz"
SGLANG_DECODE = ENGINES / "sglang-qwen3-8b-decode-mi300x.json.gz"
SGLANG_EXTEND = ENGINES / "sglang-qwen3-8b-extend-mi300x.json.gz"
SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "analysis.schema.json").read_text())

# (file, phase, requests, query tokens, KV tokens): what each trace's step annotation says.
ENGINE_STEPS = [
    (VLLM_DECODE, "decode", 32, 32, 55086),
    (VLLM_MIXED, "mixed", 9 + 37, 8155 + 37, 8430 + 34489),
    (SGLANG_DECODE, "decode", 32, 32, 32785),
    (SGLANG_EXTEND, "prefill", 15, 15360, 15360),
]

# Real annotation strings: from the traces above, and the examples of TraceLens's own parser
# (TraceLens/TraceUtils/annotation_utils.py at 171dd747), which TraceLens's patched engines write.
REAL_NAMES: list[tuple[str, str, int | None, int | None, int | None]] = [
    ("execute_32_context_0(sq0sk0sqsq0sqsk0)_generation_32(sq32sk55086sqsq32sqsk55086)", "decode", 32, 32, 55086),
    (
        "execute_8192_context_9(sq8155sk8430sqsq7475785sqsk7671310)_generation_37(sq37sk34489sqsq37sqsk34489)",
        "mixed",
        46,
        8192,
        42919,
    ),
    (
        "execute_15360_context_15(sq15360sk15360sqsq15728640sqsk15728640)_generation_0(sq0sk0sqsq0sqsk0)",
        "prefill",
        15,
        15360,
        15360,
    ),
    (
        "execute_6147_context_2(sq6144sk7144sqsq20971520sqsk23019520)_generation_3(sq3sk6144sqsq3sqsk6144)",
        "mixed",
        5,
        6147,
        13288,
    ),
    ("execute_context_2(14721)_generation_0(0)", "prefill", 2, 14721, None),
    ("execute_context_0(0)_generation_64(64)", "decode", 64, 64, None),
    ("execute_context_2(6144)_generation_3(3)", "mixed", 5, 6147, None),
    ("execute_context_1(888_788544)_generation_0(0)", "prefill", 1, 888, None),
    ("step[DECODE bs=32]", "decode", 32, None, None),
    ("step[EXTEND bs=15 toks=15360]", "prefill", 15, 15360, None),
    ("step[MIXED bs=2]", "mixed", 2, None, None),
    (
        "step[EXTEND bs=2 toks=14721 c_sq=14721 c_sqsq=108745533 c_sqsk=108745533 c_sk=14721]",
        "prefill",
        2,
        14721,
        14721,
    ),
    ("step[DECODE bs=64 g_sq=128 g_sqsq=256 g_sqsk=262144 g_sk=131072]", "decode", 64, 128, 131072),
    (
        "step[MIXED bs=2 c=1 g=1 c_sq=5 c_sk=8 c_sqsq=25 c_sqsk=40 g_sq=1 g_sk=12 g_sqsq=1 g_sqsk=12]",
        "mixed",
        2,
        6,
        20,
    ),
    ("tracekit::decode[step=3,ctx=515]", "decode", 1, 1, 515),
    ("tracekit::prefill[chunk=0,ctx=512,tokens=512]", "prefill", 1, 512, 512),
]

BAD_NAMES = [
    "execute_context_1000000000(5)_generation_0(0)",  # 10^9 requests
    "execute_context_1(-5)_generation_0(0)",  # negative
    "execute_context_1(5)",  # no generation part
    "execute_32_context_0(sq0sk0sqsq0sqsk0)_generation_32(sq32sk55086sqsq32)",  # a field missing
    "execute_32_context_0(sq0sk0sqsq0sqsk0)_generation_32(sq32sk16sqsq32sqsk16)",  # fewer KV than query tokens
    "execute_99_context_0(sq0sk0sqsq0sqsk0)_generation_32(sq32sk55086sqsq32sqsk55086)",  # 99 != 32 tokens
    "step[DECODE]",
    "step[DECODE bs=]",
    "step[EXTEND bs=2 toks=x]",
    "step[DECODE bs=99999999999]",
    "step[DECODE bs=\uff13\uff12]",  # full-width digits: a count is written in ASCII
    "execute_context_1(\u0668\u0668_7)_generation_0(0)",  # Arabic-Indic digits
    "tracekit::decode[step=3,ctx=nan]",
]


@pytest.mark.parametrize(("name", "phase", "requests", "query", "kv"), REAL_NAMES, ids=[n[0][:48] for n in REAL_NAMES])
def test_step_readers_on_real_annotations(
    name: str, phase: str, requests: int | None, query: int | None, kv: int | None
) -> None:
    key = parse_phase(name)
    assert key is not None and key.note is None
    assert (key.phase, key.requests, key.query_tokens, key.kv_tokens) == (phase, requests, query, kv)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_annotation_leaves_the_context_unknown_with_a_note(name: str) -> None:
    key = parse_phase(name)
    assert key is not None, "a broken step annotation is still a step"
    assert (key.requests, key.query_tokens, key.kv_tokens, key.context_tokens) == (None, None, None, None)
    assert key.note is not None and name[:40] in key.note


def test_every_reader_says_who_writes_it() -> None:
    assert {r.source for r in STEP_READERS} >= {"tracekit", "vllm", "sglang", "profiler_step", "forward"}
    assert all(r.writes for r in STEP_READERS)


def _steps_json(*args: str) -> dict[str, Any]:
    r = run_cli("analyze", *args, "--by", "step", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


@pytest.mark.parametrize(
    ("path", "phase", "requests", "query", "kv"), ENGINE_STEPS, ids=lambda x: getattr(x, "name", "")
)
def test_engine_trace_steps_equal_their_annotation(path: Path, phase: str, requests: int, query: int, kv: int) -> None:
    doc = _steps_json(str(path))
    (trace,) = doc["traces"]
    (step,) = trace["steps"]
    assert (step["phase"], step["requests"], step["query_tokens"], step["kv_tokens"]) == (phase, requests, query, kv)
    # The step holds all of the trace's device work, attention included.
    total = sum(c["time_us"] for c in trace["categories"].values())
    assert step["attention_us"] + step["other_us"] == pytest.approx(total, abs=0.01)
    assert step["attention_us"] == pytest.approx(trace["categories"]["attention"]["time_us"], abs=0.001)
    assert step["attention_share"] == pytest.approx(step["attention_us"] / total, abs=1e-4)
    assert 0 <= step["idle_us"] <= step["span_us"]
    assert doc["growth"]["attention_us_per_1k_kv"] is None and doc["growth"]["notes"]


def test_nested_engine_annotations_are_one_step() -> None:
    """SGLang with TraceLens's patch annotates each step twice (execute_... around step[...])."""
    doc = _steps_json(str(SGLANG_EXTEND))
    assert len(doc["traces"][0]["steps"]) == 1


def test_engine_folder_in_process_and_on_dask_give_the_same_rows(tmp_path: Path) -> None:
    folder = tmp_path / "engines"
    shutil.copytree(ENGINES, folder)
    one = _steps_json(str(folder), "--workers", "1")
    dask = _steps_json(str(folder), "--workers", "2")
    assert [t["path"] for t in one["traces"]] == sorted(str(folder / p.name) for p in ENGINES.glob("*.json.gz"))
    assert [t["steps"] for t in one["traces"]] == [t["steps"] for t in dask["traces"]]
    assert one["growth"] == dask["growth"]
    assert one["growth"]["decode_steps_with_kv"] == 2  # one decode step from each engine: too few to fit


def _rename_step(src: Path, dst: Path, new_name: str) -> None:
    doc = json.loads(gzip.decompress(src.read_bytes()))
    for e in doc["traceEvents"]:
        if e.get("cat") == "user_annotation" and e.get("name", "").startswith("execute_"):
            e["name"] = new_name
    dst.write_bytes(gzip.compress(json.dumps(doc).encode()))


@pytest.mark.parametrize("bad", ["execute_context_1000000000(32)_generation_0(0)", "execute_32_context_0(sq0sk0)"])
def test_bad_annotation_in_a_real_trace(tmp_path: Path, bad: str) -> None:
    p = tmp_path / "vllm-bad.json.gz"
    _rename_step(VLLM_DECODE, p, bad)
    for fmt in ("json", "csv", "table"):
        r = run_cli("analyze", str(p), "--by", "step", "--format", fmt)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    doc = _steps_json(str(p))
    (step,) = doc["traces"][0]["steps"]
    assert (step["requests"], step["query_tokens"], step["kv_tokens"]) == (None, None, None)
    assert step["attention_us"] > 0
    (note,) = doc["traces"][0]["step_notes"]
    assert bad[:30] in note


# --- HF generate() on the CPU, recorded here --------------------------------------------------------

_GENERATE = r"""
import sys, torch
from pathlib import Path
from torch.profiler import profile, ProfilerActivity
from tracekit.capture.backends.hf_load import import_transformers, preset_config

tf = import_transformers()
torch.manual_seed(0)
torch.set_num_threads(1)
out, new = Path(sys.argv[1]), int(sys.argv[2])
model = tf.AutoModelForCausalLM.from_config(preset_config("tiny"), attn_implementation="sdpa").eval()
with torch.inference_mode():
    for item in sys.argv[3:]:
        ctx, batch = (int(x) for x in item.split("x"))
        prompt = torch.randint(1, 100, (batch, ctx))
        model.generate(prompt[:, :8], max_new_tokens=2, do_sample=False, pad_token_id=0)  # warm-up
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_stack=True) as prof:
            model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
        folder = out / ("sweep" if batch > 1 else "single")
        folder.mkdir(exist_ok=True)
        prof.export_chrome_trace(str(folder / f"generate-{ctx:05d}x{batch}.json"))
"""

HF_CONTEXTS = [64, 2000, 4000]  # prompt lengths of the sweep, each a batch of HF_BATCH requests
HF_BATCH = 4
HF_SINGLE = 2000  # one request: its KV tokens rise by one a step
HF_NEW = 8


@pytest.fixture(scope="module")
def hf_traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real ``model.generate()`` traces of the hf backend's tiny preset (random weights, no
    download) recorded with record_shapes and with_stack: ``single/`` one request of HF_SINGLE
    tokens, ``sweep/`` a batch of HF_BATCH requests per prompt length (a batch makes attention's
    growth stand out of a busy 2-core machine's noise)."""
    pytest.importorskip("transformers", reason="needs the [hf] extra")
    out = tmp_path_factory.mktemp("generate")
    script = out / "generate.py"
    script.write_text(_GENERATE)
    items = [f"{HF_SINGLE}x1", *(f"{c}x{HF_BATCH}" for c in HF_CONTEXTS)]
    r = subprocess.run(
        [sys.executable, str(script), str(out), str(HF_NEW), *items],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    script.unlink()
    return out


def test_hf_generate_steps_from_input_shapes(hf_traces: Path) -> None:
    doc = _steps_json(str(hf_traces / "single" / f"generate-{HF_SINGLE:05d}x1.json"))
    steps = doc["traces"][0]["steps"]
    assert [s["phase"] for s in steps] == ["prefill"] + ["decode"] * (HF_NEW - 1)
    assert (steps[0]["query_tokens"], steps[0]["kv_tokens"]) == (2000, 2000)
    decode = steps[1:]
    assert [s["kv_tokens"] for s in decode] == list(range(2001, 2001 + HF_NEW - 1))  # one more a step
    assert all(s["requests"] == 1 and s["query_tokens"] == 1 for s in decode)
    for s in steps:
        assert s["attention_us"] > 0 and 0 < s["attention_share"] < 1
        assert s["attention_share"] == pytest.approx(s["attention_us"] / (s["attention_us"] + s["other_us"]), abs=1e-3)


def test_hf_generate_growth_across_prompt_lengths(hf_traces: Path) -> None:
    doc = _steps_json(str(hf_traces / "sweep"), "--at-kv", "32000", "--workers", "1")
    g = doc["growth"]
    assert g["n_steps"] == len(HF_CONTEXTS) * (HF_NEW - 1)
    assert g["kv_tokens_range"] == [HF_BATCH * (HF_CONTEXTS[0] + 1), HF_BATCH * (HF_CONTEXTS[-1] + HF_NEW - 1)]
    steps = [s for t in doc["traces"] for s in t["steps"] if s["phase"] == "decode"]
    assert all(s["requests"] == HF_BATCH and s["query_tokens"] == HF_BATCH for s in steps)
    lo, hi = g["attention_us_per_1k_kv_ci95"]
    assert 0 < lo <= g["attention_us_per_1k_kv"] <= hi and g["conclusive"]
    assert 0 <= g["r2"] <= 1
    plo, phi = g["attention_us_at_kv_ci95"]
    assert plo <= g["attention_us_at_kv"] <= phi


def test_hf_generate_without_shapes_says_how_to_record_them(hf_traces: Path, tmp_path: Path) -> None:
    """The same real trace with its ``Input Dims`` taken out (what record_shapes=False writes)."""
    doc = json.loads((hf_traces / "single" / f"generate-{HF_SINGLE:05d}x1.json").read_text())
    for e in doc["traceEvents"]:
        e.get("args", {}).pop("Input Dims", None)
    p = tmp_path / "no-shapes.json"
    p.write_text(json.dumps(doc))
    out = _steps_json(str(p))
    steps = out["traces"][0]["steps"]
    assert len(steps) == HF_NEW and all(s["kv_tokens"] is None and s["requests"] is None for s in steps)
    assert [s["step"] for s in steps] == list(range(HF_NEW))
    assert any("record_shapes=True" in n for n in out["traces"][0]["step_notes"])


def test_hf_gpu_trace_step_from_shapes_matches_tracelens() -> None:
    """TraceLens's H100 Qwen1.5-0.5B trace (../shared/fixtures): one ProfilerStep#6 holding a batch of
    16 prompts of 559 tokens; its attention time is TraceLens's own figure (24 flash kernels, 2722.7 µs)."""
    from tests.helpers import H100, fixture_path

    doc = _steps_json(str(fixture_path(H100)))
    (step,) = doc["traces"][0]["steps"]
    assert (step["step"], step["phase"], step["requests"], step["query_tokens"], step["kv_tokens"]) == (
        6,
        "prefill",
        16,
        16 * 559,
        16 * 559,
    )
    assert step["attention_us"] == pytest.approx(2722.7, rel=1e-3)
