"""Committed real-GPU samples (traces/samples/<gpu>-<backend>/), analyzed like any other trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tracekit.analysis.analyze import analyze_trace
from tracekit.trace.read import load_trace

SAMPLES = sorted(p for p in (ROOT / "traces" / "samples").glob("*") if (p / "manifest.json").exists())


@pytest.mark.skipif(
    not SAMPLES, reason="no real-GPU samples are committed yet (make test-gpu on a CUDA machine writes them)"
)
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_committed_gpu_sample(sample: Path) -> None:
    manifest = json.loads((sample / "manifest.json").read_text())
    assert manifest["device"]["kind"] == "cuda"
    report = json.loads((sample / "report.json").read_text())
    assert report["schema"] == "tracekit.report/1"
    for trace in sample.glob("*.trimmed.json.gz"):
        res = analyze_trace(load_trace(trace))
        assert res.device == "gpu"
        decode = [p for p in res.phases if p.phase == "decode"]
        assert decode and all(p.categories.get("attention") for p in decode), trace
