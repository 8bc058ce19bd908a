"""``tracekit report`` on engine traces: the distance to the limit, step by step, and the roofline
of attention and GEMMs under the MI300X's roof, seen in headless chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import ROOT, chromium, roofline_pixels, run_cli

ENGINES = ROOT / "tests" / "data" / "engines"
QWEN3_8B = ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json"
SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "steps-report.schema.json").read_text())


def _traces(tmp_path: Path) -> Path:
    folder = tmp_path / "qwen"
    folder.mkdir()
    for name in ("sglang-qwen3-8b-decode-mi300x.json.gz", "sglang-qwen3-8b-extend-mi300x.json.gz"):
        shutil.copy(ENGINES / name, folder / name)
    return folder


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_steps_report_gives_each_step_its_distance_to_the_limit(tmp_path: Path) -> None:
    folder = _traces(tmp_path)
    r = run_cli("report", str(folder), "--model-config", str(QWEN3_8B), "--format", "json", "--out", "-")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["device"]["key"] == "mi300x" and doc["model_facts"]["facts"]["layers"]["source"] == "config.json"
    steps = {s["phase"]: s for t in doc["traces"] for s in t["steps"]}
    assert steps["decode"]["attention_bytes"] == 4_853_219_328
    assert steps["decode"]["attention_peak_share"] == pytest.approx(0.4303, abs=1e-4)
    assert steps["prefill"]["attention_bound"] == "compute"
    assert "attention read the KV cache at 2.28 TB/s, 43% of the roof" in doc["headline"]
    assert doc["limit_findings"] == []


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_bad_limit_flags_on_traces_are_one_line(tmp_path: Path) -> None:
    folder = _traces(tmp_path)
    for device in ("mi3000x", "mi300x;rm", ""):
        r = run_cli("report", str(folder), "--device", device, "--format", "json", "--out", "-")
        assert r.returncode == 2 and "--device" in r.stderr and len(r.stderr.strip().splitlines()) == 1, device


@pytest.mark.slow  # headless chromium
def test_steps_report_roofline_seen_in_chromium(tmp_path: Path) -> None:
    chromium()
    folder = _traces(tmp_path)
    r = run_cli("report", str(folder), "--model-config", str(QWEN3_8B), "--format", "html")
    assert r.returncode == 0, r.stderr
    text = (folder / "steps-report.html").read_text(encoding="utf-8")
    assert "Distance to the limit" in text
    red, blue, dark = roofline_pixels(text, tmp_path)
    assert red > 30 and blue > 30 and dark > 500, (red, blue, dark)
