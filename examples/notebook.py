# %% [markdown]
# # tracekit in a notebook
#
# Open this file as a notebook (Jupyter and VS Code read the `# %%` cells; `jupytext` converts it
# to `.ipynb`) or run it as a script:
#
#     python examples/notebook.py [TRACE ...] [--run RUN_FOLDER]
#
# Without arguments it analyzes the H100 trace committed under `tests/data/foreign/` and, if
# `traces/` holds a run from `make demo` or `tracekit capture`, the newest one. Every table is a
# `tracekit.Table`: `.to_pandas()` and `.to_arrow()` need `pip install 'tracekit[notebook]'`.

# %%
import sys
from pathlib import Path

import tracekit

here = Path(__file__).resolve().parent.parent
args = sys.argv[1:]
run_dir = None
if "--run" in args:
    i = args.index("--run")
    run_dir = args[i + 1]
    del args[i : i + 2]
traces = args or [str(here / "tests/data/foreign/h100-qwen1.5-0.5b-hf-sdpa.json.gz")]
if run_dir is None:
    runs = sorted((p for p in (here / "traces").glob("*/manifest.json")), key=lambda p: p.stat().st_mtime)
    run_dir = str(runs[-1].parent) if runs else None

# %% [markdown]
# ## A trace from anywhere: device time by category
#
# `tracekit.analyze` runs what `tracekit analyze` runs (files, folders, globs; several traces on
# Dask). `window=` restricts to one profiler step, as `--window` does.

# %%
a = tracekit.analyze(traces, window="ProfilerStep#6")
categories = a.categories.to_pandas()
by_category = categories.groupby("category", observed=True)["time_us"].sum().sort_values(ascending=False)
print(by_category.round(1))

# %% [markdown]
# ## Kernels: total, count, mean, shortest, longest and median launch

# %%
kernels = a.kernels.to_pandas()
print(kernels[["kernel", "category", "count", "time_us", "mean_us", "p50_us", "max_us"]].head(10).to_string())

# %% [markdown]
# ## Steps with their attention share
#
# `a.steps` is `analyze --by step`: one row per engine step with its requests, query and KV
# tokens (from vLLM's and SGLang's annotations, tracekit's own, or the attention operator's
# recorded shapes), attention and other µs, and attention's share. Here: real vLLM and SGLang
# steps on an MI300X, committed under `tests/data/engines/`.

# %%
engines = tracekit.analyze(sorted(str(p) for p in (here / "tests/data/engines").glob("*.json.gz")), by="step")
steps = engines.steps.to_pandas()
print(
    steps[["phase", "requests", "query_tokens", "kv_tokens", "attention_us", "other_us", "attention_share"]].to_string()
)

# %% [markdown]
# ## How far from the hardware's limit
#
# `Analysis.limits()` compares each step's attention, weight GEMMs and whole step with the device
# the trace names (from `tracekit devices`): bytes, FLOPs, achieved TB/s and share of the peak.
# The SGLang step needs the model's facts: Qwen3-8B's `config.json`, committed beside the tests.

# %%
sglang = tracekit.analyze(str(here / "tests/data/engines/sglang-qwen3-8b-decode-mi300x.json.gz"))
limits = sglang.limits(model_config=str(here / "tests/data/models/qwen3-8b/config.json"))
print(limits.device["name"], limits.device["peak_bandwidth_tb_s"], "TB/s")
print(limits.steps.to_pandas()[["kv_tokens", "attention_achieved_tb_s", "attention_peak_share", "attention_bound"]])

# %% [markdown]
# ## What would help
#
# `tracekit.advise` answers with numbers. Without a trace it projects from model facts: here the
# README's case, Mistral-7B in 4 bits on a Jetson AGX Orin at 31 and 20 tokens/s.

# %%
advice = tracekit.advise(
    preset="mistral-7b", weight_bits=4, on="jetson-orin-agx", context=(16, 1441), measured=((16, 31.0), (1441, 20.0))
)
print(advice.projection.to_pandas()[["context", "device", "ceiling_tokens_per_s", "measured_tokens_per_s"]])
print(f"the KV cache's growth explains {advice.bound_explains:.1%} of the measured slowdown")

# %% [markdown]
# ## Every launch: one row per kernel, memcpy and memset

# %%
launches = a.launches.to_pandas()
print(launches.groupby(["category", "stream"], observed=True)["time_us"].agg(["count", "sum"]).round(1))

# %% [markdown]
# ## A captured run: decode cost against context
#
# `tracekit.load_run` gives the report's own figures: medians with 95 % intervals, per round and
# per step, the fits and the findings.

# %%
if run_dir is not None:
    run = tracekit.load_run(run_dir)
    print(run.headline)
    contexts = run.contexts.to_pandas()
    print(
        contexts[
            ["context_tokens", "tokens_per_s", "tokens_per_s_ci95_lo", "tokens_per_s_ci95_hi", "attention_share"]
        ].to_string()
    )
    print(run.rounds.to_pandas().pivot(index="round", columns="context_tokens", values="decode_ms_per_token").round(3))
    print(
        run.limits.to_pandas()[
            ["context_tokens", "attention_achieved_tb_s", "step_achieved_tb_s", "ceiling_tokens_per_s"]
        ]
    )
    print(run.advise(target_tps=10).advice.to_pandas()[["kind", "predicted_gain", "claim"]].head(3).to_string())
    figure = run.plot.attention_share()  # a matplotlib figure: shown inline in a notebook
else:
    print("no run folder: make demo (or tracekit capture) makes one")
