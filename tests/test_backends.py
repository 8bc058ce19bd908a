"""Real engines on the CPU: HF transformers with a tiny random Llama; clear errors for what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import capture, run_cli
from tracekit.analysis.analyze import analyze_trace
from tracekit.analysis.classify import Classifier
from tracekit.analysis.rules import RULES
from tracekit.manifest import read_manifest
from tracekit.trace.read import load_trace

pytestmark = pytest.mark.slow  # real HF transformers captures

pytest.importorskip("transformers", reason="needs the [hf] extra")


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture(tmp_path_factory.mktemp("hf"), [64, 512], 8, backend="hf", preset="tiny", profile_steps=4)


def test_hf_sweep_manifest_and_phases(hf_run: Path) -> None:
    m = read_manifest(hf_run)
    assert m.backend == "hf" and m.complete
    assert m.model.architecture == "LlamaForCausalLM"
    assert (m.model.layers, m.model.heads, m.model.kv_heads, m.model.head_dim) == (2, 4, 2, 64)
    assert m.model.parameter_bytes > 0
    assert m.settings["cache_reused"] is True  # transformers' DynamicCache is kept and cropped back each round
    for c in m.contexts:
        t = c.timings
        assert c.status == "ok" and [len(r) for r in t.decode_s_by_round] == [7] * 5
        assert len(t.prefill_s_repeats) == 3 and t.decode_ms_per_token_ci95 is not None
        res = analyze_trace(load_trace(hf_run / str(c.trace)))
        decode = [p for p in res.phases if p.phase == "decode"]
        assert [p.context_tokens for p in decode] == [c.context_tokens + i for i in range(1, 5)]
        assert [p.phase for p in res.phases if p.phase == "prefill"] == ["prefill"]


def _attention_units(trace_path: Path, rules: tuple) -> dict[int, str]:  # type: ignore[type-arg]
    t = load_trace(trace_path)
    clf = Classifier(t, rules)
    out = {}
    for i, h in enumerate(t.host):
        if h.cat == "cpu_op" and h.dur - t.child[i] > 0 and clf.classify(h.name, i).category == "attention":
            out[i] = h.name
    return out


def test_attention_scopes_cover_exactly_what_the_name_rules_call_attention(hf_run: Path) -> None:
    trace = hf_run / str(read_manifest(hf_run).contexts[-1].trace)
    t = load_trace(trace)
    by_scope = _attention_units(trace, tuple(r for r in RULES if r.name == "attention-core-scope" or r.scope is None))
    by_name = _attention_units(trace, tuple(r for r in RULES if r.scope is None))
    # Every op the kernel-name rules call attention lies inside an attention-core scope ...
    assert by_name and set(by_name) <= set(by_scope)
    # ... and what the scope adds beyond them is the attention function's own glue (views, transposes),
    # a negligible share of attention time.
    extra = set(by_scope) - set(by_name)

    def self_us(ix: set[int]) -> float:
        return sum(t.host[i].dur - float(t.child[i]) for i in ix)

    assert self_us(extra) < 0.1 * self_us(set(by_name)), sorted({by_scope[i] for i in extra})


def test_hf_eager_attention_is_found_by_scope(tmp_path: Path) -> None:
    run = capture(tmp_path, [128], 4, backend="hf", preset="tiny-qwen", attn="eager", profile_steps=2)
    m = read_manifest(run)
    assert m.model.architecture == "Qwen2ForCausalLM" and m.model.attn == "eager"
    res = analyze_trace(load_trace(run / str(m.contexts[0].trace)))
    att = [k for k in res.kernels if k.category == "attention"]
    names = {k.name for k in att}
    assert {"aten::matmul", "aten::softmax"} & names or {"aten::bmm", "aten::_softmax"} & names, names
    assert all(k.rule == "attention-core-scope" for k in att)


def test_hf_backend_restores_transformers(tmp_path: Path) -> None:
    from transformers import modeling_utils

    before = modeling_utils.ALL_ATTENTION_FUNCTIONS.get_interface
    capture(tmp_path, [16], 2, backend="hf", preset="tiny", profile_steps=1, measure_bandwidth=False, enrich=False)
    assert modeling_utils.ALL_ATTENTION_FUNCTIONS.get_interface == before
    assert "get_interface" not in vars(modeling_utils.ALL_ATTENTION_FUNCTIONS)


def test_hf_model_directory_offline(tmp_path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-llama"
    LlamaForCausalLM(cfg).save_pretrained(model_dir)
    r = run_cli(
        "capture",
        "--backend",
        "hf",
        "--model",
        str(model_dir),
        "--context",
        "32",
        "--tokens",
        "4",
        "--profile-steps",
        "1",
        "--out",
        str(tmp_path / "runs"),
    )
    assert r.returncode == 0, r.stderr
    run = Path(r.stdout.strip().splitlines()[-1])
    m = json.loads((run / "manifest.json").read_text())
    assert m["model"]["name"] == "hf/tiny-llama" and m["model"]["layers"] == 1 and m["model"]["vocab"] == 512
    assert run.name.endswith("-hf-tiny-llama-sdpa")


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", ["--backend", "hf", "--model", "/nonexistent/model"], "no such directory"),
        ("empty", ["--backend", "hf", "--model", "{dir}"], "no config.json here"),
        ("config", ["--backend", "hf", "--model", "{dir}"], "no weights"),
        ("none", ["--backend", "hf", "--preset", "gpt5"], "unknown --preset 'gpt5' for --backend hf"),
        ("none", ["--backend", "hf", "--attn", "math2"], "--attn 'math2' is not available for --backend hf"),
        ("none", ["--backend", "exllamav2", "--model", "/x"], "needs a CUDA GPU"),
    ],
)
def test_backend_errors_are_one_line(tmp_path: Path, setup: str, args: list[str], message: str) -> None:
    import torch

    if "exllamav2" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    d = tmp_path / "model"
    if setup in ("empty", "config"):
        d.mkdir()
    if setup == "config":
        (d / "config.json").write_text("{}")
    args = [a.replace("{dir}", str(d)) for a in args]
    r = run_cli("capture", *args, "--context", "16", "--tokens", "4", "--out", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1


def test_missing_transformers_is_a_clear_error(tmp_path: Path) -> None:
    # Run in a child where importing transformers fails, as on an install without the [hf] extra.
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['transformers'] = None; from tracekit.cli import main; "
        f"sys.exit(main(['capture', '--backend', 'hf', '--context', '16', '--tokens', '4', '--out', {str(tmp_path)!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "pip install 'tracekit[hf]'" in r.stderr and "Traceback" not in r.stderr


def test_missing_exllamav2_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    # Pretend CUDA is present so the check reaches the import, as on a GPU machine without the extra.
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    code = (
        "import sys, torch; torch.cuda.is_available = lambda: True; sys.modules['exllamav2'] = None; "
        "from tracekit.cli import main; "
        f"sys.exit(main(['capture', '--backend', 'exllamav2', '--model', {str(tmp_path / 'm')!r}, "
        f"'--context', '16', '--tokens', '4', '--out', {str(tmp_path / 'runs')!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "pip install 'tracekit[exllamav2]'" in r.stderr and "Traceback" not in r.stderr
