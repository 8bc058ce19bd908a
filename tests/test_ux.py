"""The first hour (issue 25): the headline's three lines, fits that say what they can, findings
that name the separating range, a diff with intervals and a verdict, tables that fit 100
columns, run folders, ranks, windows, capture's messages, --version and -h.

Real captures (tiny builtin runs through the command line), real fixture traces, the real
command line in a subprocess; hand-built report data only where a case needs figures a short
capture cannot promise (an inconclusive slope, overlapping intervals, a changed thread count).
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import H100, capture, fixture_path, run_cli, sampled_context
from tracekit.manifest import BackgroundLoad, DeviceFacts, ModelFacts
from tracekit.report.diff import compare, verdict
from tracekit.report.findings import findings_for
from tracekit.report.headline import LINES, headline
from tracekit.report.model import ContextFigures, ReportFacts
from tracekit.report.run_analysis import EXTRAPOLATION, growth

WIDTH = "100"
TINY = ["--context", "16,96", "--tokens", "6", "--rounds", "2", "--profile-steps", "2", "--chunk", "64"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real tiny captures: sdpa, math attention, and bfloat16 (another dtype), made through
    the library in this process (a subprocess would import torch again for each; the command
    line's own capture is tested in test_capture.py and below)."""
    out = tmp_path_factory.mktemp("ux")
    tiny: dict[str, object] = {"rounds": 2, "profile_steps": 2, "chunk": 64}
    return {
        "sdpa": capture(out, [16, 96], 6, name="sdpa", **tiny),
        "math": capture(out, [16, 96], 6, name="math", attn="math", **tiny),
        "bf16": capture(out, [16, 96], 6, name="bf16", dtype="bfloat16", **tiny),
    }


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


# 1. The headline ------------------------------------------------------------------------------


@pytest.mark.slow  # the module's three real captures
def test_the_headline_is_three_lines_that_agree_in_every_format(runs: dict[str, Path], tmp_path: Path) -> None:
    run = Path(shutil.copytree(runs["sdpa"], tmp_path / "run"))
    r = run_cli("report", str(run), "--format", "json", "--format", "md", "--format", "html")
    assert r.returncode == 0, r.stderr
    doc = json.loads((run / "report.json").read_text())
    lines = doc["headline"]["lines"]
    # Three lines, and the distance to the device's limit where the run knows its roof.
    assert [x.split(":")[0] for x in lines] in (["What grew", "Why", "Trust"], ["What grew", "Why", "Limit", "Trust"])
    assert doc["headline"]["text"] == " ".join(lines)
    for line in lines:
        assert line in r.stderr  # the terminal prints the same lines
        lead, rest = line.split(": ", 1)
        assert f"**{lead}:** {html.escape(rest, quote=False)}" in (run / "report.md").read_text()
        assert f"<b>{lead}:</b> {html.escape(rest)}" in (run / "report.html").read_text()
    # What grew: every category's change per token, largest first, each with its interval.
    cats = doc["headline"]["categories_added_ms_per_token"]
    assert [abs(c["added_ms_per_token"]) for c in cats] == sorted(
        (abs(c["added_ms_per_token"]) for c in cats), reverse=True
    )
    first = cats[0]
    # The JSON keeps 4 decimals and the line 3 significant digits of the unrounded figure: the line
    # shows one of the roundings of a figure within half a JSON unit.
    v = first["added_ms_per_token"]
    shown = {f"{first['category']} {x:+.3g} [" for x in (v - 5e-5, v, v + 5e-5)}
    assert first["ci95"] is not None and any(s in lines[0] for s in shown), (shown, lines[0])
    # Why: the bound's share is of the total growth, said once.
    assert lines[1].count("%") <= 2
    added = doc["headline"]["added_ms_per_token_ci95"]
    if added[0] <= 0 <= added[1]:  # (rounded to 4 digits: an end within 1e-4 of zero would be ambiguous)
        assert "within the noise, so no share of it is given" in lines[1]
    else:
        assert "of the total growth" in lines[1] or "did not get slower" in lines[1]
    assert "the timer was honest" in lines[-1]


@pytest.mark.slow  # the module's three real captures
def test_a_missing_trace_leaves_the_split_by_category_unknown(runs: dict[str, Path], tmp_path: Path) -> None:
    run = Path(shutil.copytree(runs["sdpa"], tmp_path / "run"))
    m = json.loads((run / "manifest.json").read_text())
    last = m["contexts"][-1]
    (run / last["trace"]).unlink()  # the largest context's trace is gone: its categories are unknown, not zero
    r = run_cli("report", str(run), "--format", "json", "--out", "-")
    assert r.returncode == 0, r.stderr
    grew = json.loads(r.stdout)["headline"]["lines"][0]
    assert f"per category: unknown (no usable trace at {last['context_tokens']:,} tokens)" in grew
    assert "gemm" not in grew and "attention" not in grew


@pytest.mark.slow  # the module's three real captures
def test_a_headline_line_is_one_more_function(runs: dict[str, Path]) -> None:
    from tracekit.report.data import build_report

    d = build_report(runs["sdpa"])
    before = headline(d).lines
    LINES.append(lambda g: f"Distance: {g.b.context_tokens} tokens measured.")
    try:
        after = headline(d).lines
    finally:
        LINES.pop()
    assert after[:-1] == before and after[-1] == f"Distance: {d.facts.ok_contexts()[-1].context_tokens} tokens measured."


# 2. Fits ---------------------------------------------------------------------------------------

MODEL = ModelFacts(
    name="hand/7b", layers=32, heads=32, kv_heads=8, head_dim=128, dtype="float16", dtype_bytes=2,
    parameter_bytes=14_000_000_000, attn="sdpa", max_context=8192,
)  # fmt: skip


def _sampled(n: int, ms: float, share: float, noise: float, rng: np.random.Generator) -> ContextFigures:
    return sampled_context(n, ms, share, noise, rng)


def _facts(cs: list[ContextFigures], load: BackgroundLoad | None = None) -> ReportFacts:
    return ReportFacts(
        run="hand", device=DeviceFacts(kind="cuda", name="Hand GPU", background_load=load), model=MODEL, settings={},
        contexts=cs, growth=growth(cs, MODEL.max_context), bandwidth_gbps=1000.0, bandwidth_source="given",
        complete=True,
    )  # fmt: skip


@pytest.mark.slow  # the module's three real captures
def test_two_points_are_an_exact_fit_without_r2(runs: dict[str, Path]) -> None:
    r = run_cli("report", str(runs["sdpa"]), "--format", "md", "--out", "-")
    assert r.returncode == 0, r.stderr
    findings = r.stdout.split("## Findings")[1].split("\n## ")[0]
    assert "exact through 2 points" in findings and "R²" not in findings
    table = r.stdout.split("## Growth with context")[1].split("\n## ")[0]
    assert "exact (2 points)" in table and "1.0000" not in table


def test_an_inconclusive_slope_predicts_nothing() -> None:
    rng = np.random.default_rng(7)
    # Decode time the same at both ends, measured noisily: the slope's interval includes zero.
    facts = _facts([_sampled(512, 20.0, 0.2, 2.0, rng), _sampled(1024, 19.5, 0.2, 2.0, rng)])
    total = facts.growth.fits["total"]
    assert total.slope_ci95 is not None and total.slope_ci95[0] < 0 < total.slope_ci95[1]
    assert not facts.growth.predictions and facts.growth.attention_half_at is None
    msgs = {f.kind: f.message for f in findings_for(facts)}
    assert "no prediction" in msgs["decode-fit"] and "tokens/s at" not in msgs["decode-fit"]
    assert "cannot say" in msgs["attention-half"]


def test_predictions_stop_at_the_extrapolation_limit_and_say_it() -> None:
    rng = np.random.default_rng(3)
    cs = [_sampled(n, 20.0 + n / 500, 0.05 + n / 40_000, 0.05, rng) for n in (1000, 2000, 3000)]
    facts = _facts(cs)
    assert facts.growth.fits["total"].slope_known
    limit = int(3000 * EXTRAPOLATION)
    assert facts.growth.extrapolation_limit == limit and list(facts.growth.predictions) == [f"tokens_per_s@{limit}"]
    msg = next(f.message for f in findings_for(facts) if f.kind == "decode-fit")
    assert f"up to {limit:,} tokens, 2x the largest measured context of 3,000" in msg and "R² " in msg


def test_the_models_maximum_is_phrased_unambiguously() -> None:
    rng = np.random.default_rng(5)
    # Attention = 1 + 0.6 ms per 1k tokens, the step 20 + 1 ms per 1k: attention is half a step
    # at 90,000 tokens by the line, far beyond the model's 8,192.
    cs = [_sampled(n, 20.0 + n / 1000, (1 + 0.6 * n / 1000) / (20.0 + n / 1000), 0.05, rng) for n in (2000, 4000)]
    facts = _facts(cs)
    half = facts.growth.attention_half_at
    assert half is not None and half > MODEL.max_context
    msg = next(f.message for f in findings_for(facts) if f.kind == "attention-half")
    assert msg.startswith("Attention does not become half of a decode step below the model's maximum context of 8,192")
    assert "beyond 8192 tokens (the model's maximum)" not in msg


# 3. Findings name the separating range --------------------------------------------------------


def test_overlapping_intervals_name_the_context_range_that_separates_them() -> None:
    rng = np.random.default_rng(11)
    a, b = _sampled(128, 20.0, 0.2, 1.0, rng), _sampled(512, 21.0, 0.22, 1.0, rng)
    facts = _facts([a, b])
    ia, ib = a.decode_ms_per_token_ci95, b.decode_ms_per_token_ci95
    assert ia and ib and ia[0] <= ib[1] and ib[0] <= ia[1]
    total = facts.growth.fits["total"]
    msg = next(f.message for f in findings_for(facts) if f.kind == "noisy-measurement")
    m = re.search(r"capture from 128 to at least ([\d,]+) tokens \(e\.g\. --context 128,(\d+)\)", msg)
    assert m, msg
    target = int(m.group(2))
    noise = (ia[1] - ia[0]) / 2 + (ib[1] - ib[0]) / 2
    assert target >= 128 + noise / total.slope and target & (target - 1) == 0  # a power of two beyond the need
    assert msg.index("A wider range") < msg.index("--rounds")  # the range first, more rounds after


# 4. diff ---------------------------------------------------------------------------------------


def test_the_diff_verdict_follows_the_interval_of_the_ratio() -> None:
    rng = np.random.default_rng(1)
    a = _sampled(512, 20.0, 0.2, 1.0, rng)
    same = _sampled(512, 20.3, 0.2, 1.0, rng)  # within the noise: the ratio's interval holds 1
    slow = _sampled(512, 30.0, 0.2, 1.0, rng)
    row = compare(a, same)
    assert row.ratio_ci is not None and row.ratio_ci[0] < 1 < row.ratio_ci[1] and row.verdict == "cannot tell"
    row = compare(a, slow)
    assert row.ratio_ci is not None and row.ratio_ci[0] > 1 and row.verdict == "B slower"
    assert compare(slow, a).verdict == "B faster"
    assert verdict(None) == "cannot tell"


@pytest.mark.slow  # the module's three real captures
def test_diff_of_real_runs_fits_100_columns_and_flags_settings(runs: dict[str, Path]) -> None:
    env = {"COLUMNS": WIDTH}
    r = run_cli("diff", str(runs["sdpa"]), str(runs["math"]), env=env)
    assert r.returncode == 0, r.stderr
    assert _widest(r.stdout) <= 100, r.stdout
    assert re.search(r"│ attention\s+│ sdpa\s+│ math\s+│ differs │", r.stdout), r.stdout
    assert not re.search(r"│ model .*differs", r.stdout)
    doc = json.loads(run_cli("diff", str(runs["sdpa"]), str(runs["math"]), "--format", "json").stdout)
    assert doc["schema"] == "tracekit.diff/1"
    for c in doc["contexts"]:
        lo, hi = c["decode_ratio_ci95"]
        assert lo <= c["decode_ratio_b_over_a"] <= hi
        assert c["verdict"] == ("B faster" if hi < 1 else "B slower" if lo > 1 else "cannot tell")
    assert {s["name"] for s in doc["settings"] if s["differs"]} >= {"attention"}
    # A run against itself: the ratio is 1 and this pair of measurements cannot tell.
    same = json.loads(run_cli("diff", str(runs["sdpa"]), str(runs["sdpa"]), "--format", "json").stdout)
    assert all(c["verdict"] == "cannot tell" and c["decode_ratio_b_over_a"] == 1.0 for c in same["contexts"])
    # Another dtype: a warning that the runs are not comparable, in every format.
    r = run_cli("diff", str(runs["sdpa"]), str(runs["bf16"]), env=env)
    assert r.returncode == 0 and "Warning: not comparable: the runs differ in dtype" in r.stdout, r.stdout
    md = run_cli("diff", str(runs["sdpa"]), str(runs["bf16"]), "--format", "md").stdout
    assert (
        md.startswith("# tracekit diff") and "not comparable" in md and "| dtype | float32 | bfloat16 | differs |" in md
    )
    page = run_cli("diff", str(runs["sdpa"]), str(runs["bf16"]), "--format", "html").stdout
    assert page.startswith("<!doctype html>") and "not comparable" in page


# 5. Tables that fit -----------------------------------------------------------------------------


def _rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]


def test_a_tiny_terminal_width_still_draws_whole_cells() -> None:
    """COLUMNS=10 wrapped every cell to a letter or two; tables are drawn at least MIN_WIDTH wide
    (the terminal wraps whole lines) and every category and figure stays whole."""
    trace = str(fixture_path(H100))
    r = run_cli("analyze", trace, env={"COLUMNS": "10"})
    assert r.returncode == 0, r.stderr
    doc = json.loads(run_cli("analyze", trace, "--format", "json").stdout)
    rows = {row[0]: row[1:] for row in _rows(r.stdout)}
    for name, cat in doc["traces"][0]["categories"].items():
        if cat["count"]:
            assert rows[name][0] == f"{cat['time_us']:.1f}", (name, r.stdout)
    assert "time_us" in r.stdout and _widest(r.stdout) >= 40


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_kernel_table_fits_100_columns_with_whole_numbers() -> None:
    trace = str(fixture_path(H100))
    r = run_cli("analyze", trace, "--by", "kernel", env={"COLUMNS": WIDTH})
    assert r.returncode == 0, r.stderr
    assert _widest(r.stdout) <= 100
    doc = json.loads(run_cli("analyze", trace, "--by", "kernel", "--format", "json").stdout)
    kernels = doc["traces"][0]["kernels"]
    first, _, roof = r.stdout.partition("└")  # the kernel table, then the kernels against the roof
    rows = _rows(first)
    assert len(rows) == len(kernels)  # one line per kernel: nothing wraps
    assert "achieved_tb_s" in roof and len(_rows(roof)) < len(kernels)  # only the kernels with shapes
    for row, k in zip(rows, kernels):
        assert int(row[3]) == k["count"] and float(row[4]) == pytest.approx(k["time_us"], abs=0.051)
    assert "pytorch_flash::flash_fwd_kernel" in r.stdout and "Flash_fwd_kernel_traits" not in r.stdout
    wide = run_cli("analyze", trace, "--by", "kernel", "--wide", "--top", "3", env={"COLUMNS": WIDTH}).stdout
    assert _widest(wide) <= 100 and "Flash_fwd_kernel_traits" in wide.replace("\n", "").replace("│", "").replace(
        " ", ""
    )
    assert "(top 3 of" in wide


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_step_table_splits_columns_instead_of_numbers_and_csv_ends_lines_with_lf() -> None:
    trace = str(fixture_path(H100))
    r = run_cli("analyze", trace, "--by", "step", env={"COLUMNS": "80"})
    assert r.returncode == 0 and _widest(r.stdout) <= 80, r.stdout
    doc = json.loads(run_cli("analyze", trace, "--by", "step", "--format", "json").stdout)
    step = doc["traces"][0]["steps"][0]
    cells = {h: v for part in r.stdout.split("┏")[1:] for h, v in zip(_head(part), _rows(part)[0])}
    assert len(r.stdout.split("┏")) > 2  # the columns went to a second table, not onto more lines
    for col in ("attention_us", "other_us", "idle_us", "span_us"):
        assert float(cells[col]) == pytest.approx(step[col], abs=0.051)
    assert int(cells["kv_tokens"]) == step["kv_tokens"] and cells["phase"] == step["phase"]
    raw = run_cli("analyze", trace, "--by", "kernel", "--format", "csv").stdout
    kernels = json.loads(run_cli("analyze", trace, "--by", "kernel", "--format", "json").stdout)["traces"][0]["kernels"]
    assert "\r" not in raw and raw.endswith("\n")
    table = list(csv.reader(io.StringIO(raw)))
    assert len(table) == len(kernels) + 1 and [row[1] for row in table[1:]] == [k["name"] for k in kernels]


def _head(part: str) -> list[str]:
    line = next(x for x in part.splitlines() if x.startswith("┃"))
    return [c.strip() for c in line.split("┃")[1:-1]]


# 6. Run folders and ranks -----------------------------------------------------------------------


@pytest.mark.slow  # the module's three real captures
def test_a_run_folder_is_analyzed_over_its_decode_steps(runs: dict[str, Path]) -> None:
    r = run_cli("analyze", str(runs["sdpa"]), "--format", "json")
    assert r.returncode == 0 and "decode steps only" in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    for t in doc["traces"]:
        assert t["window"]["name"].endswith("decode phases") and t["window"]["source"] == "phase"
        busy = t["busy_us"] / (t["busy_us"] + t["idle_us"])
        assert busy > 0.3, t  # the steps' own idle time, not the gaps between rounds
    everything = json.loads(run_cli("analyze", str(runs["sdpa"]), "--phase", "all", "--format", "json").stdout)
    prefill = json.loads(run_cli("analyze", str(runs["sdpa"]), "--phase", "prefill", "--format", "json").stdout)
    for d, a, p in zip(doc["traces"], everything["traces"], prefill["traces"]):
        assert a["window"]["name"] == "whole trace"
        total = sum(c["time_us"] for c in a["categories"].values())
        parts = sum(c["time_us"] for c in d["categories"].values()) + sum(
            c["time_us"] for c in p["categories"].values()
        )
        assert parts <= total + 0.01
    table = run_cli("analyze", str(runs["sdpa"]), env={"COLUMNS": WIDTH}).stdout
    assert "traces:" not in table and "2 traces" not in table  # no sum over different context lengths


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_phase_the_trace_lacks_is_one_line() -> None:
    foreign = str(fixture_path(H100))
    none = run_cli("analyze", foreign, "--phase", "decode")
    assert none.returncode == 2 and none.stderr.count(foreign) == 1, none.stderr
    assert "no decode phase in this trace (phases: step); use --phase all" in none.stderr


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_unrelated_traces_are_not_called_ranks(runs: dict[str, Path], tmp_path: Path) -> None:
    traces = sorted(runs["sdpa"].glob("context-*.pt.trace.json.gz"))
    folder = tmp_path / "job"
    folder.mkdir()
    for i, t in enumerate(traces):
        shutil.copy(t, folder / f"rank-{i}.json.gz")
    r = run_cli("analyze", str(folder), "--workers", "1", "--format", "json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)["summary"]
    assert summary["ranks"] is None and "pass --ranks" in summary["ranks_refused"]
    assert "pass --ranks if they are" in r.stderr
    ranked = json.loads(run_cli("analyze", str(folder), "--workers", "1", "--ranks", "--format", "json").stdout)
    assert [row["rank"] for row in ranked["summary"]["ranks"]["rows"]] == [0, 1]
    # Ranks the traces carry themselves (distributedInfo) need no flag.
    for i, t in enumerate(traces):
        doc = json.loads(gzip.decompress(t.read_bytes()))
        doc["distributedInfo"] = {"rank": i, "world_size": 2, "backend": "gloo"}
        (folder / f"rank-{i}.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    own = json.loads(run_cli("analyze", str(folder), "--workers", "1", "--format", "json").stdout)
    assert own["summary"]["ranks"] is not None and own["summary"]["ranks_refused"] is None


# 7. Windows ---------------------------------------------------------------------------------------


@pytest.mark.slow  # the module's three real captures
def test_window_patterns_say_what_they_took_and_sum_on_request(runs: dict[str, Path]) -> None:
    trace = str(sorted(runs["sdpa"].glob("context-*.pt.trace.json.gz"))[0])
    listed = run_cli("analyze", trace, "--list-windows").stdout.splitlines()
    steps = [x.strip() for x in listed if x.strip().startswith("ProfilerStep#")]
    numbers = [int(s.split("#")[1].split()[0]) for s in steps]
    assert len(numbers) >= 2 and numbers == sorted(numbers)  # natural order: #2 before #10
    r = run_cli("analyze", trace, "--window", "ProfilerStep#*", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert f"matched {len(steps)} annotations; took the earliest, ProfilerStep#{numbers[0]}" in r.stderr
    first = json.loads(r.stdout)["traces"][0]
    assert first["window"]["name"] == f"ProfilerStep#{numbers[0]}"
    summed = json.loads(
        run_cli("analyze", trace, "--window", "ProfilerStep#*", "--window-all", "--format", "json").stdout
    )
    each = [
        json.loads(run_cli("analyze", trace, "--window", f"ProfilerStep#{n}", "--format", "json").stdout)["traces"][0]
        for n in numbers
    ]
    total = sum(c["time_us"] for c in summed["traces"][0]["categories"].values())
    assert total == pytest.approx(sum(sum(c["time_us"] for c in e["categories"].values()) for e in each), rel=1e-6)
    bad = run_cli("analyze", trace, "--window", "nope*")
    assert bad.returncode == 2 and "no annotation matches 'nope*'" in bad.stderr and "--list-windows" in bad.stderr
    assert bad.stderr.count(trace) == 1  # the path once, not repeated by the failure's line


# 9. Capture's messages ----------------------------------------------------------------------------


@pytest.mark.slow  # a real capture
def test_capture_reports_progress_when_piped_and_refuses_too_few_tokens(tmp_path: Path) -> None:
    r = run_cli("capture", *TINY[:2], "--tokens", "4", "--rounds", "1", "--profile-steps", "1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert re.search(r"^tracekit: round 1/1, context 96 \(1/\d+ done\), \d+ s$", r.stderr, re.M), r.stderr
    quiet = run_cli("capture", *TINY[:2], "--tokens", "4", "--rounds", "1", "--out", str(tmp_path),
                    env={"TRACEKIT_PROGRESS": "0"})  # fmt: skip
    assert quiet.returncode == 0 and "tracekit: round" not in quiet.stderr
    few = run_cli("capture", "--tokens", "3", "--context", "16", "--out", str(tmp_path / "x"))
    assert few.returncode == 2 and few.stderr.strip().splitlines() == [
        "tracekit: error: --tokens 3 is too few: the first token comes from the prefill and the next 2 decode steps "
        "are warm-up, so at least 4 are needed for one measured step (try --tokens 16)"
    ]


@pytest.mark.slow  # a real capture
def test_hf_without_a_model_says_it_runs_a_random_model(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    r = run_cli("capture", "--backend", "hf", "--context", "16", "--tokens", "4", "--rounds", "1",
                "--profile-steps", "1", "--out", str(tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (
        "--backend hf without --model runs a random-weight model (--preset tiny; presets: tiny, tiny-qwen)" in r.stderr
    )


def test_a_thread_count_that_changed_between_rounds_is_a_finding() -> None:
    rng = np.random.default_rng(3)
    cs = [_sampled(1000, 20.0, 0.1, 0.3, rng), _sampled(3000, 24.0, 0.25, 0.3, rng)]
    load = BackgroundLoad(cpus=2, by_round_cores=[0.2, 0.9, 0.2], mean_cores=0.43, threads_by_round=[2, 1, 2])
    found = [f for f in findings_for(_facts(cs, load)) if f.kind == "threads-changed"]
    assert len(found) == 1 and "(2, 1, 2 threads, round by round)" in found[0].message
    steady = BackgroundLoad(cpus=2, mean_cores=0.1, threads_by_round=[2, 2, 2])
    assert not [f for f in findings_for(_facts(cs, steady)) if f.kind == "threads-changed"]


# 10. --version, -h, presets in --help --------------------------------------------------------------


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_version_short_help_and_every_preset_in_capture_help() -> None:
    from tracekit import __version__
    from tracekit.capture.presets import BACKEND_PRESETS

    v = run_cli("--version")
    assert v.returncode == 0 and v.stdout.strip() == f"tracekit {__version__}"
    assert run_cli("-h").stdout == run_cli("--help").stdout and "Commands:" in run_cli("-h").stdout
    assert run_cli("diff", "-h").stdout.startswith("Usage: tracekit diff")
    text = " ".join(run_cli("capture", "--help").stdout.split())
    for backend, presets in BACKEND_PRESETS.items():
        for p in presets:
            assert re.search(rf"{backend}: [^;)]*\b{re.escape(p)}\b", text), (backend, p)
