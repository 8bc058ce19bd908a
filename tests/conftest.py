"""Shared fixtures: real captures (session-scoped, so each sweep runs once) and the foreign traces."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KINETO_LOG_LEVEL", "5")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "foreign"

H100 = "h100-qwen1.5-0.5b-hf-sdpa.json.gz"
MI300X = "mi300x-qwen1.5-0.5b-hf-sdpa.json.gz"
V100_DDP = "v100-ddp-training-216k-events.json.gz"
V100_RESNET = "v100-resnet-training.pt.trace.json.gz"
CPU_ONLY = "cpu-only.pt.trace.json.gz"


def fixture_path(name: str) -> Path:
    """A trace from ../shared/fixtures, read in place; the test skips where the folder is absent."""
    p = FIXTURES / name
    if not p.exists():
        pytest.skip(f"../shared/fixtures/foreign/{name} is absent (fixtures live beside the project, not in it)")
    return p


def run_cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``tracekit`` command in a subprocess."""
    full_env = {**os.environ, "KINETO_LOG_LEVEL": "5", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tracekit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


def capture(out: Path, contexts: list[int], tokens: int, **kw: object) -> Path:
    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.sweep import SweepOptions, run_capture
    from tracekit.perfetto.export import enrich_context

    opts = CaptureOptions(**{k: v for k, v in kw.items() if k in CaptureOptions.__dataclass_fields__})  # type: ignore[arg-type]
    sweep_kw = {k: v for k, v in kw.items() if k in SweepOptions.__dataclass_fields__}
    sweep = SweepOptions(contexts=contexts, tokens=tokens, out=out, **sweep_kw)  # type: ignore[arg-type]
    return run_capture(opts, sweep, after_context=enrich_context if kw.get("enrich", True) else None)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick real capture: builtin tiny model, two contexts, a few tokens."""
    return capture(tmp_path_factory.mktemp("small"), [32, 160], 6, profile_steps=3, chunk=64)


@pytest.fixture
def run(small_run: Path, tmp_path: Path) -> Path:
    """A copy of a real capture, free to damage."""
    return Path(shutil.copytree(small_run, tmp_path / "run"))


# Three rounds and one timed prefill per context: the fits need the decode steps, and the
# 4096-token prefill is the sweep's largest cost (the default sweep runs in test_busy_core).
@pytest.fixture(scope="session")
def sweep_math(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture(
        tmp_path_factory.mktemp("math"), [128, 1024, 2048, 4096], 32, attn="math", name="math", rounds=3,
        prefill_repeats=1,
    )  # fmt: skip


@pytest.fixture(scope="session")
def sweep_sdpa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return capture(
        tmp_path_factory.mktemp("sdpa"), [128, 1024, 2048, 4096], 32, attn="sdpa", name="sdpa", rounds=3,
        prefill_repeats=1,
    )  # fmt: skip
