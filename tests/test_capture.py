"""Capture: real torch.profiler sweeps on the built-in model, the manifest, errors and interruptions."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import torch

from tests.conftest import ROOT, capture, run_cli
from tracekit.capture.backends.base import CaptureOptions, Generation, StepCallback
from tracekit.capture.backends.builtin import BuiltinBackend
from tracekit.capture.sweep import SweepOptions, run_capture
from tracekit.manifest import read_manifest

SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "manifest.schema.json").read_text())


def test_manifest_matches_schema_and_holds_timings(small_run: Path) -> None:
    doc = json.loads((small_run / "manifest.json").read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["complete"] is True and doc["interrupted"] is False
    assert doc["device"]["kind"] == "cpu"
    assert doc["model"]["layers"] == 4 and doc["model"]["kv_heads"] == 8
    assert [c["context_tokens"] for c in doc["contexts"]] == [32, 160]
    for c in doc["contexts"]:
        t = c["timings"]
        assert c["status"] == "ok"
        assert len(t["decode_s_per_token"]) == 5  # 6 tokens: the first comes from the prefill
        assert t["tokens_per_s"] == pytest.approx(5 / sum(t["decode_s_per_token"]))
        # On the CPU the work is done when the call returns: both readings agree closely.
        assert t["prefill_s_unsynced"] <= t["prefill_s"] <= t["prefill_s_unsynced"] * 1.5 + 0.01
        assert t["profiled_tokens_per_s"] > 0
        assert (small_run / c["trace"]).exists()


def test_traces_are_chrome_json_with_phase_step_context_and_attention(small_run: Path) -> None:
    m = read_manifest(small_run)
    entry = m.contexts[1]
    doc = json.loads(gzip.decompress((small_run / str(entry.trace)).read_bytes()))
    names = [e.get("name", "") for e in doc["traceEvents"]]
    prefill = [n for n in names if n.startswith("tracekit::prefill[")]
    decode = [n for n in names if n.startswith("tracekit::decode[")]
    # 160 tokens in chunks of 64 -> 3 prefill chunks; --profile-steps 3 decode steps.
    assert prefill == [
        "tracekit::prefill[chunk=0,ctx=64,tokens=64]",
        "tracekit::prefill[chunk=1,ctx=128,tokens=64]",
        "tracekit::prefill[chunk=2,ctx=160,tokens=32]",
    ]
    assert decode == [
        "tracekit::decode[step=1,ctx=161]",
        "tracekit::decode[step=2,ctx=162]",
        "tracekit::decode[step=3,ctx=163]",
    ]
    layers = m.model.layers
    per_phase = len(prefill) + len(decode)
    assert names.count("tracekit::attention_core") == layers * per_phase
    assert names.count("tracekit::kv_cache_write") == layers * per_phase
    assert names.count("tracekit::rope") == layers * per_phase


def test_runs_are_never_overwritten(tmp_path: Path) -> None:
    a = capture(tmp_path, [16], 2, profile_steps=1, name="same", measure_bandwidth=False, enrich=False)
    b = capture(tmp_path, [16], 2, profile_steps=1, name="same", measure_bandwidth=False, enrich=False)
    assert a.name == "same" and b.name == "same-2"
    assert (a / "manifest.json").exists() and (b / "manifest.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "9000", "--tokens", "4"], "exceeds the model's maximum of 8192"),
        (["--tokens", "0"], "--tokens must be at least 1"),
        (["--backend", "vllm"], "--backend 'vllm' is not one of"),
        (["--preset", "gpt5"], "unknown --preset 'gpt5'"),
        (["--device", "cuda", "--context", "16", "--tokens", "2"], "CUDA is not available"),
        (["--context", "12,abc"], "'abc' is not a whole number"),
        (["--tokens", "many"], "Invalid value for '--tokens'"),
        (["--attn", "flash", "--context", "16"], "--attn 'flash' is not available for the builtin backend"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run_cli("capture", "--out", str(tmp_path), *args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir()), "a refused capture must not leave a run folder"


def test_cli_capture_prints_the_run_folder_last(tmp_path: Path) -> None:
    r = run_cli("capture", "--context", "16,48", "--tokens", "3", "--profile-steps", "2", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    run = Path(r.stdout.strip().splitlines()[-1])
    assert run.parent == tmp_path and (run / "manifest.json").exists()
    assert sorted(p.name for p in run.glob("*.pt.trace.json.gz")) == [
        "context-000016.pt.trace.json.gz",
        "context-000048.pt.trace.json.gz",
    ]
    assert not list(run.glob(".tmp*")) and not list(run.glob(".*.tmp"))
    assert "USDT" not in r.stderr  # libkineto's start/stop chatter is held back


def test_ctrl_c_keeps_finished_contexts_and_marks_the_run_partial(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracekit",
            "capture",
            "--context",
            "16,2048,4096,8000",
            "--tokens",
            "64",
            "--out",
            str(tmp_path),
            "--name",
            "ctrlc",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    manifest = tmp_path / "ctrlc" / "manifest.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if manifest.exists() and json.loads(manifest.read_text())["contexts"]:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    doc = json.loads(manifest.read_text())
    assert doc["interrupted"] is True and doc["complete"] is False
    assert doc["contexts"] and all(c["status"] == "ok" for c in doc["contexts"])
    for c in doc["contexts"]:
        assert (tmp_path / "ctrlc" / c["trace"]).exists()
    assert not list((tmp_path / "ctrlc").glob(".tmp-*"))


class OOMAt(BuiltinBackend):
    """The builtin backend, failing as CUDA does when one context length does not fit."""

    def __init__(self, opts: CaptureOptions, fail_at: int) -> None:
        super().__init__(opts)
        self.fail_at = fail_at

    def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        if len(prompt) == self.fail_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().generate(prompt, max_new_tokens, on_step)


def test_out_of_memory_at_one_context_marks_it_failed_and_goes_on(tmp_path: Path) -> None:
    opts = CaptureOptions()
    run = run_capture(
        opts,
        SweepOptions(contexts=[16, 64, 128], tokens=3, profile_steps=1, out=tmp_path, measure_bandwidth=False),
        backend=OOMAt(opts, 64),
    )
    m = read_manifest(run)
    assert [(c.context_tokens, c.status) for c in m.contexts] == [(16, "ok"), (64, "failed"), (128, "ok")]
    assert "out of memory" in (m.contexts[1].error or "")
    assert m.complete


def test_other_errors_are_not_swallowed(tmp_path: Path) -> None:
    class Broken(BuiltinBackend):
        def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
            raise RuntimeError("a bug, not a lack of memory")

    opts = CaptureOptions()
    with pytest.raises(RuntimeError, match="a bug"):
        run_capture(
            opts, SweepOptions(contexts=[16], tokens=2, out=tmp_path, measure_bandwidth=False), backend=Broken(opts)
        )
