#!/usr/bin/env bash
# Download the wheels the GPU machine lacks (it has torch, transformers, tokenizers, safetensors, typer,
# rich, matplotlib, numpy, pandas, ninja and nvcc, Python 3.12, and reaches no registry). Carried as gpu-wheels/.
# isal is optional (tracekit falls back to the standard gzip module without it).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p gpu-wheels
pip=${PIP:-.venv/bin/pip}
$pip download --quiet --no-deps -d gpu-wheels --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any \
  msgspec isal exllamav2
ls -la gpu-wheels
