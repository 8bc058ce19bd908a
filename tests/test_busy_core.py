"""Honest numbers on a noisy machine: the default sweep, captured while another process keeps one
core busy, still shows tokens/s falling and the attention share rising from the smallest to the
largest context, with 95% intervals in the manifest and the report.

Why it holds on a shared 2-core machine: the capture measures the load first and uses only the
cores left free (one thread here), so no parallel region waits on a preempted thread; the rounds
interleave the contexts, so a burst of other work hits every context alike; and the figures are
medians (a preempted step does not move them). The gaps it must find are large: a 4096-token
step reads 32 times the KV cache of a 128-token one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import ROOT, run_cli

pytestmark = pytest.mark.slow  # a whole default sweep beside a busy process

MANIFEST_SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "manifest.schema.json").read_text())
REPORT_SCHEMA = json.loads((ROOT / "tracekit" / "schemas" / "report.schema.json").read_text())


# Other processes' CPU use (in cores, as the capture measures it) this test accepts: its own busy
# process and a little noise.
ONE_CORE_AND_NOISE = 1.15


def _inside(x: float, iv: list[float]) -> bool:
    return iv[0] - 1e-6 <= x <= iv[1] + 1e-6


def test_one_busy_core_still_shows_the_context_effect_with_intervals(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it take its core before the capture measures the load
        cap = run_cli(
            "capture", "--context", "128,1024,4096", "--tokens", "32", "--out", str(tmp_path), "--name", "busy",
            timeout=900,
        )  # fmt: skip
    finally:
        busy.kill()
        busy.wait()
    assert cap.returncode == 0, cap.stderr
    run = tmp_path / "busy"
    m = json.loads((run / "manifest.json").read_text())
    jsonschema.validate(m, MANIFEST_SCHEMA)

    # The busy core was seen, and the capture did not put a thread on it.
    load = m["device"]["background_load"]
    cpus = len(os.sched_getaffinity(0))
    assert load["cpus"] == cpus and load["before_cores"] > 0
    if cpus >= 2:
        assert all(t <= cpus - 1 for t in load["threads_by_round"]), load

    t = {c["context_tokens"]: c["timings"] for c in m["contexts"]}
    assert sorted(t) == [128, 1024, 4096] and all(c["status"] == "ok" for c in m["contexts"])
    for x in t.values():
        assert x["rounds"] == 5
        assert _inside(x["decode_ms_per_token"], x["decode_ms_per_token_ci95"])
        assert _inside(x["tokens_per_s"], x["tokens_per_s_ci95"])
        assert _inside(x["prefill_s"], x["prefill_s_ci95"])
        assert _inside(x["ttft_s"], x["ttft_s_ci95"])
    assert all(x["tokens_per_s_ci95"][0] < x["tokens_per_s_ci95"][1] for x in t.values())
    # The claim is about one busy core. Where other work took more (a second test run, a build), the
    # intervals widen, as they should, and may overlap: then the report must say so, and the claim
    # itself is not tested on that machine (runs here measured 0.99-1.01 cores of other work; one
    # beside a second test suite, 1.99 before the sweep and up to 1.27 in a round, and its
    # 128-token interval was [95, 187] tokens/s).
    other = max([load["before_cores"], *load["by_round_cores"]])
    quiet = other <= ONE_CORE_AND_NOISE
    if quiet:
        # Tokens/s falls from the smallest to the largest context, and the intervals say so too: they
        # are not points, and they do not overlap (a point inside its own interval alone proves little).
        assert t[128]["tokens_per_s_ci95"][0] > t[4096]["tokens_per_s_ci95"][1], (
            t[128]["tokens_per_s_ci95"],
            t[4096]["tokens_per_s_ci95"],
        )
    # The capture printed every context with its interval.
    assert cap.stderr.count(" tokens/s (") == 3 and "(95% intervals)" in cap.stderr

    rep = run_cli("report", str(run), "--format", "json", "--format", "md", "--format", "html")
    assert rep.returncode == 0, rep.stderr
    assert "What grew: from 128 to 4,096 tokens, decode went " in rep.stderr  # the headline, printed
    doc = json.loads((run / "report.json").read_text())
    jsonschema.validate(doc, REPORT_SCHEMA)
    share = {c["context_tokens"]: c for c in doc["contexts"]}
    h = doc["headline"]
    if quiet:
        # The attention share rises from the smallest to the largest context, beyond its intervals.
        assert share[4096]["attention_share_ci95"][0] > share[128]["attention_share_ci95"][1], h["text"]
    else:
        # A busier machine: the headline names the other work, and says whether the decode intervals
        # of the two ends overlap, as they do or do not.
        a, b = t[128]["decode_ms_per_token_ci95"], t[4096]["decode_ms_per_token_ci95"]
        apart = a[1] < b[0] or b[1] < a[0]
        assert h["conclusive"] is apart and ("cannot tell the two contexts apart" in h["text"]) is not apart, h
        assert "other work ran beside the capture" in h["text"] or "too busy to measure honestly" in h["text"], h
    for c in share.values():
        assert _inside(c["attention_share"], c["attention_share_ci95"])
        assert _inside(c["decode_ms_per_token"], c["decode_ms_per_token_ci95"])
    assert h["decode_ms_per_token_smallest_ci95"] and h["attention_added_ms_per_token_ci95"]
    md = (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    for text in (md, page):
        assert "from 128 to 4,096 tokens, decode went" in text and "[95% CI]" in text
    print(
        f"busy core: tokens/s {t[128]['tokens_per_s']:.1f} {t[128]['tokens_per_s_ci95']} -> "
        f"{t[4096]['tokens_per_s']:.1f} {t[4096]['tokens_per_s_ci95']}; attention share "
        f"{share[128]['attention_share']:.3f} {share[128]['attention_share_ci95']} -> "
        f"{share[4096]['attention_share']:.3f} {share[4096]['attention_share_ci95']}; load {load}"
    )
    if not quiet:
        pytest.skip(
            f"other processes used up to {other:.2f} cores, not the one this test keeps busy: the report's honesty was checked, the claim was not"
        )
