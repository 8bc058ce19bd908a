"""``tracekit report`` on engine traces: the distance to the limit, step by step, and the roofline
of attention and GEMMs under the MI300X's roof, seen in headless chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tests.helpers import ROOT, run_cli

ENGINES = ROOT / "tests" / "data" / "engines"
QWEN3_8B = ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json"
SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "steps-report.schema.json").read_text())


def _traces(tmp_path: Path) -> Path:
    folder = tmp_path / "qwen"
    folder.mkdir()
    for name in ("sglang-qwen3-8b-decode-mi300x.json.gz", "sglang-qwen3-8b-extend-mi300x.json.gz"):
        shutil.copy(ENGINES / name, folder / name)
    return folder


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


def test_bad_limit_flags_on_traces_are_one_line(tmp_path: Path) -> None:
    folder = _traces(tmp_path)
    r = run_cli("report", str(folder), "--device", "mi3000x", "--format", "json", "--out", "-")
    assert r.returncode == 2 and "--device" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_steps_report_roofline_seen_in_chromium(tmp_path: Path) -> None:
    from PIL import Image

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed ('make chromium' installs Debian's chromium)")
    folder = _traces(tmp_path)
    r = run_cli("report", str(folder), "--model-config", str(QWEN3_8B), "--format", "html")
    assert r.returncode == 0, r.stderr
    text = (folder / "steps-report.html").read_text(encoding="utf-8")
    assert "Distance to the limit" in text
    start = text.index('<div class="plot" id="plot-roofline">')
    end = text.index("</svg>", start) + len("</svg>")
    alone = tmp_path / "roofline.html"
    alone.write_text(f"<!doctype html><html><body style='margin:0'>{text[start:end]}</div></body></html>")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}"]
    shot = tmp_path / "roofline.png"
    s = subprocess.run(
        [exe, *flags, f"--screenshot={shot}", "--window-size=800,560", alone.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), s.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r_, g, b = px[..., 0], px[..., 1], px[..., 2]
    red = int(((r_ > 180) & (g < 90) & (b < 90)).sum())  # attention, #d62728
    blue = int(((r_ < 80) & (g > 90) & (g < 150) & (b > 150)).sum())  # GEMMs, #1f77b4
    dark = int(((r_ < 60) & (g < 60) & (b < 60)).sum())  # the roof, axes, text
    assert red > 30 and blue > 30 and dark > 500, (red, blue, dark)
