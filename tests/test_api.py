"""The Python API (docs/python.md): tables with the documented columns and dtypes, the same figures
as the command line's JSON to its last digit, the notebook example run end to end, and a working
``import tracekit`` without pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tracekit
from tests.helpers import CPU_ONLY, H100, ROOT, fixture_path, run_cli

pd = pytest.importorskip("pandas", reason="pandas comes with the notebook extra, which make test installs")
pytest.importorskip("pyarrow", reason="pyarrow comes with the notebook extra, which make test installs")

KERNEL_DTYPES = {
    "trace": "string",
    "rank": "Int64",
    "name": "string",
    "kernel": "string",
    "category": "category",
    "rule": "category",
    "count": "Int64",
    "time_us": "float64",
    "mean_us": "float64",
    "min_us": "float64",
    "max_us": "float64",
    "p50_us": "float64",
}


def _dtypes(df: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in df.dtypes.items()}


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_kernel_table_has_the_documented_columns_and_adds_up_to_the_json_categories() -> None:
    path = fixture_path(H100)
    a = tracekit.analyze(str(path), window="ProfilerStep#6", by="kernel")
    kernels = a.kernels.to_pandas()
    assert _dtypes(kernels) == KERNEL_DTYPES
    doc = json.loads(run_cli("analyze", str(path), "--window", "ProfilerStep#6", "--by", "kernel", "-f", "json").stdout)
    trace = doc["traces"][0]
    # Each category's total, summed from the kernel rows, equals the command's figure to its last digit.
    sums = kernels.groupby("category", observed=True)["time_us"].sum()
    for name, c in trace["categories"].items():
        assert round(float(sums.get(name, 0.0)), 3) == c["time_us"], name
    cats = a.categories.to_pandas().set_index("category")
    for name, c in trace["categories"].items():
        assert round(float(cats.loc[name, "time_us"]), 3) == c["time_us"]
        assert int(cats.loc[name, "count"]) == c["count"]
    # The kernel rows are the command's rows, with the launch statistics beside them.
    rows = {(k["name"], k["rule"]): k for k in trace["kernels"]}
    assert len(rows) == len(kernels)
    for k in kernels.itertuples():
        j = rows[(k.name, k.rule)]
        assert (round(k.time_us, 3), k.count) == (j["time_us"], j["count"])
        assert k.min_us <= k.p50_us <= k.max_us
        assert k.min_us <= k.mean_us <= k.max_us
    # The reference figure (TraceLens, ../shared/fixtures/README.md): 24 flash kernels, 2722.7 µs.
    flash = kernels[kernels.kernel == "pytorch_flash::flash_fwd_kernel"]
    assert int(flash["count"].sum()) == 24
    assert abs(float(flash.time_us.sum()) - 2722.7) < 0.1


def test_launches_are_every_device_event_and_sum_to_the_categories() -> None:
    path = fixture_path(H100)
    a = tracekit.analyze(path, window="ProfilerStep#6")
    launches = a.launches.to_pandas()
    assert list(launches.columns) == [
        "trace", "name", "kernel", "category", "rule", "stream", "start_us", "dur_us", "time_us", "phase", "step",
        "context_tokens",
    ]  # fmt: skip
    assert str(launches.category.dtype) == "category" and str(launches.step.dtype) == "Int64"
    counts = launches.groupby("category", observed=True).size()
    for name, c in a.summary.categories.items():
        assert int(counts.get(name, 0)) == c.count, name
    assert (launches.dur_us >= launches.time_us - 1e-9).all()
    assert set(launches.stream) == {"0:7"}
    arrow = a.launches.to_arrow()
    assert arrow.num_rows == len(launches) and str(arrow.schema.field("category").type).startswith("dictionary")


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_loaded_traces_and_paths_give_the_same_tables() -> None:
    path = fixture_path(H100)
    from_path = tracekit.analyze(str(path)).kernels.to_pandas()
    loaded = tracekit.load_trace(str(path))
    from_trace = tracekit.analyze(loaded).kernels.to_pandas()
    pd.testing.assert_frame_equal(from_path, from_trace)


def test_cpu_only_trace_launches_are_its_operators() -> None:
    a = tracekit.analyze(fixture_path(CPU_ONLY))
    launches = a.launches.to_pandas()
    assert len(launches) == a.summary.categories["other"].count + sum(
        c.count for k, c in a.summary.categories.items() if k != "other"
    )
    assert launches.stream.str.contains(":").all()


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_a_folder_runs_as_the_command_does_and_fails_per_trace(tmp_path: Path) -> None:
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8b not gzip")
    good = tmp_path / H100
    good.write_bytes(fixture_path(H100).read_bytes())
    a = tracekit.analyze(tmp_path, workers=1)
    assert [f.path for f in a.failed] == [str(tmp_path / "bad.json.gz")]
    assert len(a.partials) == 1
    html = a._repr_html_()
    assert "1 failed" in html and "attention" in html
    doc = json.loads(run_cli("analyze", str(tmp_path), "-f", "json", "--workers", "1").stdout)
    assert a.to_json()["summary"]["categories"] == doc["summary"]["categories"]


def test_run_tables_equal_the_report_json(small_run: Path) -> None:
    run = tracekit.load_run(small_run)
    doc = json.loads(run_cli("report", str(small_run), "-f", "json", "--out", "-").stdout)
    contexts = run.contexts.to_pandas()
    assert str(contexts.context_tokens.dtype) == "Int64" and str(contexts.status.dtype) == "category"
    assert str(contexts.decode_ms_per_token.dtype) == "float64"
    for row, j in zip(contexts.itertuples(), doc["contexts"]):
        assert row.context_tokens == j["context_tokens"]
        assert round(row.decode_ms_per_token, 4) == j["decode_ms_per_token"]
        assert [round(row.decode_ms_per_token_ci95_lo, 4), round(row.decode_ms_per_token_ci95_hi, 4)] == j[
            "decode_ms_per_token_ci95"
        ]
        assert round(row.tokens_per_s, 3) == j["tokens_per_s"]
    rounds = run.rounds.to_pandas()
    for j in doc["contexts"]:
        got = rounds[rounds.context_tokens == j["context_tokens"]].decode_ms_per_token.round(4).tolist()
        assert got == j["decode_ms_per_token_by_round"]
    steps = run.steps.to_pandas()
    assert str(steps.warmup.dtype) == "boolean"
    assert len(steps) == sum(len(r) for e in json.loads((small_run / "manifest.json").read_text())["contexts"]
                             for r in e["timings"]["decode_s_by_round"])  # fmt: skip
    assert run.headline.split()[0] and run.headline in run._repr_html_().replace("&#x27;", "'")
    fig = run.plot.attention_share()
    assert type(fig).__name__ == "Figure"
    assert "<html" in run.report_html()._repr_html_().lower()


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_import_without_pandas_works_and_to_pandas_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['pandas'] = None; sys.modules['pyarrow'] = None\n"
        "import tracekit\n"
        f"a = tracekit.analyze({str(fixture_path(H100))!r})\n"
        "print(len(a.kernels))\n"
        "for t in (a.kernels.to_pandas, a.kernels.to_arrow):\n"
        "    try:\n"
        "        t()\n"
        "    except tracekit.UserError as e:\n"
        "        print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert int(lines[0]) > 10
    assert lines[1] == "this needs pandas, which is not installed: pip install 'tracekit[notebook]'"
    assert lines[2] == "this needs pyarrow, which is not installed: pip install 'tracekit[notebook]'"


def test_the_notebook_example_runs_on_a_fixture_and_a_run(small_run: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook.py"), str(fixture_path(H100)), "--run", str(small_run)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "attention        2722.7" in out  # the category table
    assert "pytorch_flash::flash_fwd_kernel" in out  # the kernel table
    assert "32785" in out and "0.2176" in out  # the step table: SGLang's decode step, its attention share
    assert "tokens_per_s_ci95_lo" in out  # the run's per-context table
    assert "no run folder" not in out


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_step_table_equals_analyze_by_step() -> None:
    engines = sorted(str(p) for p in (ROOT / "tests" / "data" / "engines").glob("*.json.gz"))
    a = tracekit.analyze(engines, by="step", workers=1)
    steps = a.steps.to_pandas()
    assert {c: str(t) for c, t in steps.dtypes.items()} == {
        "trace": "string", "step": "Int64", "phase": "category", "source": "category", "requests": "Int64",
        "query_tokens": "Int64", "kv_tokens": "Int64", "attention_us": "float64", "other_us": "float64",
        "idle_us": "float64", "span_us": "float64", "attention_share": "float64", "start_us": "float64",
    }  # fmt: skip
    doc = json.loads(run_cli("analyze", *engines, "--by", "step", "-f", "json", "--workers", "1").stdout)
    rows = [(t["path"], s) for t in doc["traces"] for s in t["steps"]]
    assert len(rows) == len(steps)
    for got, (path, want) in zip(steps.itertuples(), rows):
        assert got.trace == path
        assert (got.requests, got.query_tokens, got.kv_tokens) == (
            want["requests"],
            want["query_tokens"],
            want["kv_tokens"],
        )
        assert (
            round(got.attention_us, 3) == want["attention_us"]
            and round(got.attention_share, 4) == want["attention_share"]
        )
    assert a.to_json()["growth"] == doc["growth"]


QWEN3_8B = ROOT / "tests" / "data" / "models" / "qwen3-8b" / "config.json"
SGLANG_DECODE = ROOT / "tests" / "data" / "engines" / "sglang-qwen3-8b-decode-mi300x.json.gz"


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_limits_equal_analyze_by_step_with_the_model_config() -> None:
    a = tracekit.analyze(SGLANG_DECODE)
    lim = a.limits(model_config=QWEN3_8B)
    assert lim.device["key"] == "mi300x" and lim.model_facts is not None
    steps = lim.steps.to_pandas()
    assert str(steps.attention_bound.dtype) == "category" and str(steps.attention_above_peak.dtype) == "boolean"
    doc = json.loads(
        run_cli("analyze", str(SGLANG_DECODE), "--by", "step", "--model-config", str(QWEN3_8B), "-f", "json").stdout
    )
    want = doc["traces"][0]["steps"][0]
    got = steps.iloc[0]
    # By hand (docs/limits.md): 32,785 KV tokens x 36 layers x 2 (K, V) x 8 KV heads x 128 x 2 bytes,
    # plus the queries read and the outputs written.
    kv = 32_785 * 36 * 2 * 8 * 128 * 2
    assert kv == 4_834_344_960 and got.attention_bytes == want["attention_bytes"] > kv
    assert round(got.attention_achieved_tb_s, 9) == want["attention_achieved_tb_s"]
    assert (
        round(got.attention_peak_share, 4)
        == want["attention_peak_share"]
        == round(want["attention_bytes"] / (2127.869e-6) / 5.3e12, 4)
    )
    assert got.attention_bound == want["attention_bound"] == "memory"
    assert lim.problems == []
    assert lim.kernels.to_pandas().empty  # the step has no GEMM operator with recorded shapes


def test_a_bad_model_config_is_one_line(tmp_path: Path) -> None:
    a = tracekit.analyze(SGLANG_DECODE)
    bad = tmp_path / "config.json"
    bad.write_text('{"num_hidden_layers": -3}')
    with pytest.raises(tracekit.UserError) as e:
        a.limits(model_config=bad)
    assert "\n" not in str(e.value) and "config.json" in str(e.value)


@pytest.mark.slow  # about a second or more (pytest --durations, 2 cores)
def test_advise_projection_equals_the_command_and_the_hand_computation() -> None:
    got = tracekit.advise(
        preset="mistral-7b",
        weight_bits=4,
        on="jetson-orin-agx",
        context=(16, 1441),
        measured=((16, 31.0), (1441, 20.0)),
    )
    doc = json.loads(
        run_cli(
            "advise", "--preset", "mistral-7b", "--weight-bits", "4", "--on", "jetson-orin-agx", "--context", "16,1441",
            "--measured", "16:31,1441:20", "--format", "json",
        ).stdout
    )  # fmt: skip
    assert got.to_json() == doc
    proj = got.projection.to_pandas()
    assert list(proj.context) == [p["context"] for p in doc["projection"]]
    for row, p in zip(proj.itertuples(), doc["projection"]):
        assert round(row.ceiling_tokens_per_s, 3) == p["ceiling_tokens_per_s"]
        # The ceiling is the bandwidth over the bytes a decode step reads: weights + the KV cache.
        assert row.ceiling_tokens_per_s == pytest.approx(
            row.peak_bandwidth_gb_s * 1e9 / (row.weight_bytes + row.kv_bytes)
        )
    assert got.bound_explains == pytest.approx(doc["bound_explains"], abs=1e-6)
    advice = got.advice.to_pandas()
    assert advice["rank"].tolist() == list(range(1, len(advice) + 1)) and advice.kind.iloc[0] == "measurement"
    assert "own-timer" in advice.rests_on.iloc[0]


def test_advise_refuses_what_the_command_refuses() -> None:
    with pytest.raises(tracekit.UserError, match="--target-tps and --target-itl"):
        tracekit.advise(preset="mistral-7b", context=(16,), target_tps=10, target_itl=5)
    with pytest.raises(tracekit.UserError, match="--preset NAME or --model-config"):
        tracekit.advise(context=(16,))


def test_a_run_s_limits_and_advice_equal_the_report_and_the_command(small_run: Path) -> None:
    run = tracekit.load_run(small_run)
    doc = json.loads(run_cli("report", str(small_run), "-f", "json", "--out", "-").stdout)
    lim = run.limits.to_pandas()
    for row, c in zip(lim.itertuples(), doc["contexts"]):
        assert row.context_tokens == c["context_tokens"]
        assert (None if pd.isna(row.ceiling_tokens_per_s) else row.ceiling_tokens_per_s) == c["ceiling_tokens_per_s"]
        assert (None if pd.isna(row.attention_achieved_tb_s) else row.attention_achieved_tb_s) == c[
            "attention_achieved_tb_s"
        ]
    cli = json.loads(run_cli("advise", str(small_run), "--target-tps", "10", "--format", "json").stdout)
    assert run.advise(target_tps=10).to_json() == cli


def test_growth_predicts_only_near_the_measured_range(small_run: Path) -> None:
    a = tracekit.analyze(small_run, workers=1)
    far = a.growth(at_kv=10**9)
    assert far.attention is not None
    doc = far.to_json()
    assert doc["attention_us_at_kv"] is None and any("not carried past 2x" in n for n in doc["notes"])
    near = a.growth(at_kv=int(far.attention.x_max)).to_json()
    assert near["attention_us_at_kv"] == round(far.attention.at(int(far.attention.x_max)), 3)
    for bad in (-5, 0, 1.5, 10**13):
        with pytest.raises(tracekit.UserError, match="at_kv"):
            a.growth(at_kv=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: tracekit.analyze(""), "paths"),
        (lambda: tracekit.analyze([]), "paths"),
        (lambda: tracekit.analyze(None), "paths"),  # type: ignore[arg-type]
        (lambda: tracekit.analyze(str(SGLANG_DECODE), by="bogus"), "by="),
        (lambda: tracekit.analyze(str(SGLANG_DECODE), workers=0), "workers="),
        (lambda: tracekit.advise(preset="mistral-7b", measured=((16, -31.0), (1441, 20.0))), "--measured"),
        (lambda: tracekit.advise(preset="mistral-7b", measured=((16, float("nan")),)), "--measured"),
        (lambda: tracekit.advise(preset="mistral-7b", context=(0, -5)), "--context"),
        (lambda: tracekit.advise(preset="mistral-7b", context="16,1441"), "--context"),  # type: ignore[arg-type]
        (lambda: tracekit.advise(preset="mistral-7b", context=(16,), generate=1.5), "--generate"),  # type: ignore[arg-type]
        (lambda: tracekit.advise(preset="mistral-7b", context=(16,), target_tps="fast"), "--target-tps"),  # type: ignore[arg-type]
        (
            lambda: tracekit.advise(preset="mistral-7b", context=(16,), generate=100, prompt=10, keep=50, every=5),
            "--keep",
        ),
    ],
)
def test_the_api_refuses_what_the_command_refuses_in_one_line(call: Any, words: str) -> None:
    with pytest.raises(tracekit.UserError) as e:
        call()
    assert words in str(e.value) and "\n" not in str(e.value)
