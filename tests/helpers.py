"""Helpers the test files import: where the real traces are, and how to run the real command.

Fixtures (pytest's) live in ``conftest.py``; plain functions and names live here, as pytest advises.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Where a foreign trace is looked for, in order: the small traces committed with the tests, then the
# shared fixtures folder (it also holds the bigger ones, e.g. V100_DDP): beside the project, or where
# TRACEKIT_FIXTURES says (a checkout whose parent has no shared/).
FIXTURE_DIRS = (
    ROOT / "tests" / "data" / "foreign",
    Path(os.environ.get("TRACEKIT_FIXTURES") or ROOT.parent / "shared" / "fixtures" / "foreign"),
)

H100 = "h100-qwen1.5-0.5b-hf-sdpa.json.gz"
MI300X = "mi300x-qwen1.5-0.5b-hf-sdpa.json.gz"
V100_DDP = "v100-ddp-training-216k-events.json.gz"
V100_RESNET = "v100-resnet-training.pt.trace.json.gz"
CPU_ONLY = "cpu-only.pt.trace.json.gz"
TIMESFORMER = "h100-timesformer-eager-attention.json.gz"
RESNET_ROCM = "mi300x-resnet-training-rocm.json.gz"
OWLV2 = "mi300x-owlv2-eager-attention.json.gz"
FLUX = "mi300x-xdit-flux-sageattention.json.gz"

# Too big to commit (3-4 MB each): only ../shared/fixtures has them, so their tests are slow-lane tests
# and `pytest -m "not slow"` needs nothing outside the repository.
SHARED_ONLY = frozenset({V100_DDP, OWLV2, FLUX})


def in_ci() -> bool:
    """CI sets ``CI=true`` (GitHub Actions, GitLab and ``.ci/run`` do): a missing fixture there is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def fixture_path(name: str) -> Path:
    """A real foreign trace, read in place: from tests/data/foreign, else ../shared/fixtures/foreign.

    A missing file never passes quietly: under CI it fails the test, elsewhere the test skips with
    a reason that names the file and both places it was looked for.
    """
    for folder in FIXTURE_DIRS:
        p = folder / name
        if p.is_file():
            return p
    where = " or ".join(str(d) for d in FIXTURE_DIRS)
    reason = f"MISSING FIXTURE {name}: not in {where}; the test did not run"
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def fixture_param(name: str) -> Any:
    """A fixture name as a ``parametrize`` value, in the slow lane where only ../shared has the file."""
    return pytest.param(name, marks=pytest.mark.slow) if name in SHARED_ONLY else name


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
    """A real capture through the library, as ``tracekit capture`` makes it."""
    from tracekit.capture.backends.base import CaptureOptions
    from tracekit.capture.sweep import SweepOptions, run_capture
    from tracekit.perfetto.export import enrich_context

    opts = CaptureOptions(**{k: v for k, v in kw.items() if k in CaptureOptions.__dataclass_fields__})  # type: ignore[arg-type]
    sweep_kw = {k: v for k, v in kw.items() if k in SweepOptions.__dataclass_fields__}
    sweep = SweepOptions(contexts=contexts, tokens=tokens, out=out, **sweep_kw)  # type: ignore[arg-type]
    return run_capture(opts, sweep, after_context=enrich_context if kw.get("enrich", True) else None)
