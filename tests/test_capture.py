"""Capture: real torch.profiler sweeps on the built-in model, the manifest, errors and interruptions."""

from __future__ import annotations

import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import torch

from tests.helpers import ROOT, capture, run_cli
from tracekit.capture.backends.base import Backend, CaptureOptions, Generation, StepCallback
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
    load = doc["device"]["background_load"]
    assert load["cpus"] == len(os.sched_getaffinity(0)) and len(load["threads_by_round"]) == 5
    assert all(1 <= n <= load["cpus"] for n in load["threads_by_round"])  # never more threads than cores
    assert doc["device"]["threads"] == load["threads_by_round"][0]
    assert doc["settings"]["rounds"] == 5 and doc["settings"]["cache_reused"] is True
    for c in doc["contexts"]:
        t = c["timings"]
        assert c["status"] == "ok"
        # 5 rounds of 5 decode steps (6 tokens: the first comes from the prefill); 2 warm-up steps
        # of each round are kept in the manifest and left out of the figures.
        assert t["rounds"] == 5 and [len(r) for r in t["decode_s_by_round"]] == [5] * 5
        assert t["decode_s_per_token"] == [s for r in t["decode_s_by_round"] for s in r[2:]]
        ms = 1000 * statistics.median(t["decode_s_per_token"])
        assert t["decode_ms_per_token"] == pytest.approx(ms, abs=1e-5)
        assert t["tokens_per_s"] == pytest.approx(1000 / ms, rel=1e-4)
        lo, hi = t["decode_ms_per_token_ci95"]
        assert lo <= ms <= hi
        assert t["tokens_per_s_ci95"] == pytest.approx([1000 / hi, 1000 / lo], rel=1e-4)
        assert len(t["decode_ms_per_token_by_round"]) == 5
        # The prefill is timed in the first 3 rounds only: the KV cache is kept between rounds.
        assert len(t["prefill_s_repeats"]) == 3 and t["cache_reused"] is True
        assert t["prefill_s"] == pytest.approx(statistics.median(t["prefill_s_repeats"]), abs=1e-6)
        assert min(t["prefill_s_repeats"]) - 1e-6 <= t["prefill_s_ci95"][0] <= t["prefill_s_ci95"][1]
        assert t["ttft_s"] >= t["prefill_s_unsynced"] and t["itl_ms_p50"] <= t["itl_ms_p90"] <= t["itl_ms_p99"]
        # On the CPU the work is done when the call returns: both readings agree closely.
        assert t["prefill_s_unsynced"] <= t["prefill_s"] <= t["prefill_s_unsynced"] * 1.5 + 0.01
        assert t["profiled_tokens_per_s"] > 0
        # --profile-steps 3 over 5 rounds: one step in each of the first three rounds.
        assert t["profiled_steps_by_round"] == [[1], [2], [3], [], []]
        assert [len(r) for r in t["profiled_decode_s_by_round"]] == [1, 1, 1, 0, 0]
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
    # Three profiler sessions (one per round) merged: their steps keep distinct names.
    steps = [n for n in names if n.startswith("ProfilerStep#")]
    assert len(steps) == len(set(steps)) == per_phase


def _decode_starts(run: Path, entry_trace: str) -> dict[int, float]:
    doc = json.loads(gzip.decompress((run / entry_trace).read_bytes()))
    out = {}
    for e in doc["traceEvents"]:
        n = e.get("name", "")
        if n.startswith("tracekit::decode[") and e.get("ph") == "X":
            out[int(n.split("step=")[1].split(",")[0])] = float(e["ts"])
    return out


def test_rounds_interleave_the_contexts_in_alternating_order(small_run: Path) -> None:
    """Round 1 visits 32 then 160, round 2 160 then 32, round 3 32 then 160: the profiled steps
    (one per round) sit in that order on the profiler's clock, which every session shares."""
    m = read_manifest(small_run)
    a = _decode_starts(small_run, str(m.contexts[0].trace))
    b = _decode_starts(small_run, str(m.contexts[1].trace))
    assert a[1] < b[1] < b[2] < a[2] < a[3] < b[3]


class CountingPrefills(BuiltinBackend):
    """The builtin backend, counting the prompt prefills it runs."""

    def __init__(self, opts: CaptureOptions) -> None:
        super().__init__(opts)
        self.prefills: list[int] = []

    def _prefill(self, prompt: list[int], *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
        self.prefills.append(len(prompt))
        return super()._prefill(prompt, *args, **kwargs)


class NoKeptCache(CountingPrefills):
    """The same model as a backend that cannot keep caches (as exllamav2): every round re-runs the prefill."""

    reuses_cache = False


@pytest.mark.slow
@pytest.mark.parametrize("backend_cls", [CountingPrefills, NoKeptCache])
def test_kept_cache_spares_prefills_and_the_fallback_still_records_every_round(
    tmp_path: Path, backend_cls: type[CountingPrefills]
) -> None:
    opts = CaptureOptions()
    be = backend_cls(opts)
    sweep = SweepOptions(
        contexts=[24, 40], tokens=5, profile_steps=4, rounds=4, prefill_repeats=2, out=tmp_path, measure_bandwidth=False
    )
    run = run_capture(opts, sweep, backend=be)
    m = read_manifest(run)
    for c in m.contexts:
        t = c.timings
        assert [len(r) for r in t.decode_s_by_round] == [4] * 4
        assert t.profiled_steps_by_round == [[1], [2], [3], [4]]
        assert [len(r) for r in t.profiled_decode_s_by_round] == [1, 1, 1, 1]
        steps = _decode_starts(run, str(c.trace))
        assert sorted(steps) == [1, 2, 3, 4]
        n = be.prefills.count(c.context_tokens)
        if backend_cls is NoKeptCache:
            # every timed round and every profiled round prefills
            assert t.cache_reused is False and len(t.prefill_s_repeats) == 4 and n == 8
        else:
            # once under the profiler (it prepares the kept cache), then the 2 timed repeats
            assert t.cache_reused is True and len(t.prefill_s_repeats) == 2 and n == 3


@pytest.mark.slow
def test_runs_are_never_overwritten(tmp_path: Path) -> None:
    a = capture(tmp_path, [16], 2, profile_steps=1, name="same", measure_bandwidth=False, enrich=False)
    b = capture(tmp_path, [16], 2, profile_steps=1, name="same", measure_bandwidth=False, enrich=False)
    assert a.name == "same" and b.name == "same-2"
    assert (a / "manifest.json").exists() and (b / "manifest.json").exists()


@pytest.mark.slow  # each case a capture process that imports torch
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--context", "9000", "--tokens", "4"], "exceeds the model's maximum of 8192"),
        (["--tokens", "0"], "--tokens '0': give a whole number from 1"),
        (["--backend", "vllm"], "--backend 'vllm' is not one of"),
        (["--preset", "gpt5"], "unknown --preset 'gpt5'"),
        (["--device", "cuda", "--context", "16", "--tokens", "4"], "CUDA is not available"),
        (["--context", "12,abc"], "'abc' is not a whole number"),
        (["--tokens", "many"], "--tokens 'many': give a whole number"),
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


@pytest.mark.slow
def test_cli_capture_prints_the_run_folder_last(tmp_path: Path) -> None:
    r = run_cli("capture", "--context", "16,48", "--tokens", "4", "--profile-steps", "2", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    run = Path(r.stdout.strip().splitlines()[-1])
    assert run.parent == tmp_path and (run / "manifest.json").exists()
    assert sorted(p.name for p in run.glob("*.pt.trace.json.gz")) == [
        "context-000016.pt.trace.json.gz",
        "context-000048.pt.trace.json.gz",
    ]
    assert not list(run.glob(".tmp*")) and not list(run.glob(".*.tmp"))
    assert "USDT" not in r.stderr  # libkineto's start/stop chatter is held back


@pytest.mark.slow
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


def test_ctrl_c_waits_for_the_end_of_a_profiler_transition() -> None:
    """Inside a profiler transition every press still reaches the handler that was there (which
    counts them), but the KeyboardInterrupt it raises waits for the end of the block; the handler
    is back in place afterwards."""
    from types import FrameType

    from tracekit.capture.profiled import interrupts_deferred

    presses: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        presses.append(signum)
        if len(presses) == 1:
            raise KeyboardInterrupt

    reached: list[str] = []
    old = signal.signal(signal.SIGINT, handler)
    try:
        with pytest.raises(KeyboardInterrupt), interrupts_deferred():
            for n in (1, 2):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler runs here, in this thread
                reached.append(f"after press {n}")
        assert reached == ["after press 1", "after press 2"] and len(presses) == 2
        assert signal.getsignal(signal.SIGINT) is handler
        # The block's own failure wins over a waiting interrupt.
        with pytest.raises(ValueError), interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            raise ValueError("the block failed")
    finally:
        signal.signal(signal.SIGINT, old)


class OOMAt(BuiltinBackend):
    """The builtin backend, failing as CUDA does when one context length does not fit."""

    def __init__(self, opts: CaptureOptions, fail_at: int) -> None:
        super().__init__(opts)
        self.fail_at = fail_at

    def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        if len(prompt) == self.fail_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().generate(prompt, max_new_tokens, on_step)

    def prepare(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
        if len(prompt) == self.fail_at:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().prepare(prompt, max_new_tokens, on_step)


@pytest.mark.slow
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


@pytest.mark.slow
def test_other_errors_are_not_swallowed(tmp_path: Path) -> None:
    class Broken(BuiltinBackend):
        def generate(self, prompt: list[int], max_new_tokens: int, on_step: StepCallback | None = None) -> Generation:
            raise RuntimeError("a bug, not a lack of memory")

    opts = CaptureOptions()
    with pytest.raises(RuntimeError, match="a bug"):
        run_capture(
            opts, SweepOptions(contexts=[16], tokens=2, out=tmp_path, measure_bandwidth=False), backend=Broken(opts)
        )


def _kept_cache_backend(name: str) -> Backend:
    if name == "hf":
        pytest.importorskip("transformers", reason="needs the [hf] extra")
        from tracekit.capture.backends.hf import HFBackend

        return HFBackend(CaptureOptions(backend="hf", preset="tiny"))
    return BuiltinBackend(CaptureOptions())


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
@pytest.mark.parametrize("name", ["builtin", pytest.param("hf", marks=pytest.mark.slow)])
def test_kept_cache_decodes_the_same_tokens_as_a_fresh_generation(name: str) -> None:
    """Rounds decode from a cache prefilled once, rolled back to any step: the tokens (and so the
    work) are those of one uninterrupted generation, on every backend that keeps a cache."""
    be = _kept_cache_backend(name)
    try:
        assert be.reuses_cache
        prompt = list(range(1, 70))
        fresh = be.generate(prompt, 8).tokens
        first = be.prepare(prompt, 8).tokens
        assert first == fresh[:1]
        g = be.decode_from(prompt, 0, 7)
        assert g.tokens == fresh[1:] and len(g.decode_s) == 7
        assert be.decode_from(prompt, 3, 4).tokens == fresh[4:]  # rolled back to 3 generated tokens
        assert be.prepare(prompt, 8).tokens == first  # a prefill repeat into the same cache
        assert be.decode_from(prompt, 0, 7).tokens == fresh[1:]
        with pytest.raises(RuntimeError, match="no kept cache"):
            be.decode_from(list(range(1, 20)), 0, 2)
    finally:
        be.release()
        be.close()
