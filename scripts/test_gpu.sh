#!/usr/bin/env bash
# make test-gpu: on a CUDA machine, capture sweeps with every backend, report, and write a summary.
# Outputs go to ${OUT:-gpu-out}; small samples (trimmed traces, manifests, report JSON) to $OUT/samples.
# Sized to finish in under 8 minutes on one H200, exllamav2's extension build included.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
LOG="$OUT/test-gpu.log"
exec > >(tee -a "$LOG") 2>&1
PY=${PYTHON:-python3}
export KINETO_LOG_LEVEL=5 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CTX=${GPU_CONTEXTS:-256,1024,2048,4096}
TOK=${GPU_TOKENS:-32}
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start ))s] $*"; }

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
if [ -d gpu-wheels ]; then $PY -m pip install --quiet --no-deps --no-index gpu-wheels/*.whl || echo "wheel install failed"; fi
$PY -c "import msgspec; print('msgspec', msgspec.__version__)" || { echo "tracekit needs msgspec (carry gpu-wheels/)"; exit 2; }
GPU=$($PY -c "import torch; n=torch.cuda.get_device_name(0).lower(); print(next((k for k in ('h200','h100','a100','l4','4090') if k in n), 'gpu'))")
tk() { $PY -m tracekit "$@"; }
runs=()

capture() {  # label, then capture arguments
  local label=$1; shift
  step "capture $label"
  local run
  run=$(tk capture --out "$OUT/runs" --name "$label" --tokens "$TOK" "$@" | tail -n 1) || { echo "capture $label failed"; return 1; }
  tk report "$run" --format json --format md --format html >/dev/null && runs+=("$run")
}

step "tiny FP16 Llama model folder (offline)"
$PY scripts/make_tiny_llama.py "$OUT/tiny-llama" || exit 2

capture builtin-tiny-sdpa --backend builtin --preset tiny --device cuda --dtype float16 --context "$CTX" --attn sdpa
capture builtin-tiny-math --backend builtin --preset tiny --device cuda --dtype float16 --context "$CTX" --attn math
capture builtin-mistral-7b-sdpa --backend builtin --preset mistral-7b --device cuda --dtype float16 --context "$CTX" --attn sdpa
capture hf-tiny-sdpa --backend hf --model "$OUT/tiny-llama" --device cuda --dtype float16 --context "$CTX" --attn sdpa
capture hf-tiny-eager --backend hf --model "$OUT/tiny-llama" --device cuda --dtype float16 --context "$CTX" --attn eager

step "exllamav2 (its CUDA extension builds on first import)"
if $PY -c "import exllamav2" ; then
  for attn in flash sdpa matmul; do
    if [ "$attn" = flash ] && ! $PY -c "import flash_attn" 2>/dev/null; then echo "flash_attn is not installed: skipping --attn flash"; continue; fi
    capture "exllamav2-tiny-$attn" --backend exllamav2 --model "$OUT/tiny-llama" --context "$CTX" --attn "$attn" --no-graphs
  done
else
  echo "exllamav2 could not be imported: its runs are missing"
fi

step "samples and summary"
mkdir -p "$OUT/samples"
{
  echo "# make test-gpu summary ($GPU)"
  echo
  echo "| run | context | prefill s (sync) | prefill s (no sync) | tokens/s | attention share | attention ms/token |"
  echo "|---|---|---|---|---|---|---|"
} > "$OUT/summary.md"
for run in "${runs[@]}"; do
  name=$(basename "$run")
  dst="$OUT/samples/$GPU-$name"
  mkdir -p "$dst"
  cp "$run/manifest.json" "$run/report.json" "$dst/"
  big=$($PY -c "import json,sys; m=json.load(open('$run/manifest.json')); ok=[c for c in m['contexts'] if c['status']=='ok']; print(max(ok,key=lambda c:c['context_tokens'])['trace'] if ok else '')")
  [ -n "$big" ] && tk export "$run/$big" --out "$dst/${big%.pt.trace.json.gz}.trimmed.json.gz" --max-steps 4 >/dev/null
  $PY - "$run/report.json" "$name" >> "$OUT/summary.md" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
for c in r["contexts"]:
    f = lambda x, n=4: "n/a" if x is None else f"{x:.{n}g}"
    print(f"| {sys.argv[2]} | {c['context_tokens']} | {f(c['prefill_s'])} | {f(c['prefill_s_unsynced'])} | "
          f"{f(c['tokens_per_s'])} | {f(c['attention_share'])} | {f(c['attention_ms_per_token'])} |")
PYEOF
done
echo >> "$OUT/summary.md"
grep -h '"message"' "$OUT"/samples/*/report.json | grep -i "synchroniz" | head -5 >> "$OUT/summary.md" || true
cat "$OUT/summary.md"
du -sh "$OUT/samples"
step "done"
