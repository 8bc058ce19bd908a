# tracekit: the front door. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,hta,hf,notebook
DEMO_CONTEXTS ?= 128,1024,4096
DEMO_TOKENS ?= 32

.PHONY: help demo test lint typecheck unit browser bench bench-capture bench-analyze bench-threads bench-scale test-gpu clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# Pinned so pip takes the CPU build on disk; an open range pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install tracekit with its extras

# capture prints each context with its 95% intervals; report writes the files and prints the answer (the headline).
demo: $(STAMP) ## Set up, capture a sweep on the built-in model, write the HTML and Markdown report, print the answer
	@set -euo pipefail; \
	run=$$($(BIN)/tracekit capture --context $(DEMO_CONTEXTS) --tokens $(DEMO_TOKENS) | tail -n 1); \
	echo "run: $$run"; \
	$(BIN)/tracekit report "$$run" --format html --format md; \
	echo "open it in Perfetto: $(BIN)/tracekit open $$run"

chromium: ## Install Debian's chromium for the browser test (root, apt-get)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	    || echo "warning: could not install chromium; the browser test will skip"; }

lint: $(STAMP) ## ruff, and the layers contract (every import points down the pipeline; pyproject.toml)
	$(BIN)/ruff check tracekit tests bench scripts examples
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict (the package, and the notebook example as a user's code)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples/notebook.py

# The slowest fast-lane tests are printed so that one drifting past a second shows up (it belongs in
# the slow lane: tests/conftest.py says what is slow).
unit: $(STAMP) ## The fast lane: tests not marked slow (no capture, Dask, chromium, ../shared or test of 1 s+)
	$(BIN)/python -m pytest -q -m "not slow" --durations=10

test: $(STAMP) chromium lint typecheck ## Set up, then lint, type check and run every test
	$(BIN)/python -m pytest -q -ra --durations=15

bench: bench-capture bench-analyze bench-scale ## Every benchmark

bench-capture: $(STAMP) ## Profiler overhead on the default demo (profiled vs unprofiled decode step)
	$(BIN)/python bench/bench_capture.py

bench-threads: $(STAMP) ## Decode step and attention share by thread count, quiet and with one core kept busy
	$(BIN)/python bench/bench_threads.py

bench-analyze: $(STAMP) ## tracekit vs HTA 0.5.0 on the V100 fixture, and a ~1 GB trace
	$(BIN)/python -m compileall -q tracekit  # timings with bytecode cached, as an installed package has it
	$(BIN)/python bench/bench_analyze.py

bench-scale: $(STAMP) ## 48 rank traces on 1 vs 2 Dask workers, and the driver's memory for 24 vs 96 traces
	$(BIN)/python bench/bench_scale.py

test-gpu: ## On a CUDA machine: tiny FP16 Llama, sweeps with builtin, hf and exllamav2, reports, summary
	bash scripts/test_gpu.sh

clean: ## Remove the environment and caches (never traces/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
