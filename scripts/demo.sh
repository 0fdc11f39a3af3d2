#!/usr/bin/env bash
# supra's main job on a built-in default, on a laptop-class CPU: take the real tiny pretrained Llama stories260K
# (../shared/models/stories260K), make training text by sampling from it, convert it to a SUPRA RNN, uptrain it with a
# progress bar, and show the held-out perplexity of the converted model at step 0 and after uptraining, with a loss
# plot. Installs what it needs first (idempotent), then works offline.
# Usage: scripts/demo.sh [MODEL]   (MODEL: a llama2.c .bin or HF Llama/Mistral folder; default stories260K)
#        SUPRA_DEMO_STEPS=N to change the number of optimizer steps (default: the config's).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${SUPRA_BUILD_DIR:-$ROOT/build}
source "$ROOT/scripts/install_deps.sh"

MODEL=${1:-$ROOT/../shared/models/stories260K/stories260K.bin}
[ -e "$MODEL" ] || { echo "error: $MODEL: model not found (pass a llama2.c .bin or an HF model folder)" >&2; exit 2; }
OUT=${SUPRA_DEMO_DIR:-$ROOT/runs/demo}

echo "== building supra"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$(command -v $PY)" >/dev/null
cmake --build "$BUILD" -j "${SUPRA_JOBS:-$(nproc)}" --target supra
SUPRA="$BUILD/supra"

echo "== the pretrained model"
"$SUPRA" info --model "$MODEL"

echo "== training text: documents sampled from the teacher itself"
if [ ! -f "$OUT/data/manifest.json" ]; then
  rm -rf "$OUT/data"
  mkdir -p "$OUT"
  "$SUPRA" data sample --model "$MODEL" --out "$OUT/data" --docs 384 --max-tokens 128 --seed 1
fi
"$SUPRA" data check "$OUT/data" --model "$MODEL" --quick

echo "== convert to SUPRA and uptrain (held-out eval at step 0 and at the end)"
rm -rf "$OUT/run"
steps=()
[ -n "${SUPRA_DEMO_STEPS:-}" ] && steps=(--train.steps "$SUPRA_DEMO_STEPS")
"$SUPRA" train --config configs/stories260k_cpu.toml --model.path "$MODEL" --data.dir "$OUT/data" \
  --run.out_dir "$OUT/run" "${steps[@]}"

echo "== results"
$PY scripts/plot_loss.py "$OUT/run/metrics.jsonl" --out "$OUT/loss.png" --title "SUPRA uptraining of $(basename "$MODEL")"
$PY - "$OUT/run/metrics.jsonl" <<'PYEOF'
import json, math, sys
evals = [r for r in map(json.loads, open(sys.argv[1])) if "eval_loss" in r]
first, last = evals[0], evals[-1]
print(f"{'':28s} {'held-out CE':>12s} {'perplexity':>11s}")
print(f"{'converted, step 0':28s} {first['eval_loss']:12.4f} {math.exp(first['eval_loss']):11.2f}")
print(f"{'uptrained, step ' + str(last['step']):28s} {last['eval_loss']:12.4f} {math.exp(last['eval_loss']):11.2f}")
PYEOF
echo "checkpoint: $(cat "$OUT/run/checkpoints/latest")  plot: $OUT/loss.png"
