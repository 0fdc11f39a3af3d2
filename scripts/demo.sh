#!/usr/bin/env bash
# supra's main job on a built-in default, on a laptop-class CPU: take the real tiny pretrained Llama stories260K
# (../shared/models/stories260K), make training text by sampling from it, convert it to a SUPRA RNN and recover the
# teacher two ways at the same token budget — plain SUPRA uptraining (train.objective = lm) and the distillation
# recipe (attention transfer, then KL to the teacher: configs/stories260k_distill.toml) — export the distilled RNN,
# generate from it, and print the held-out perplexity, bits/token and task accuracy of the teacher, the converted
# model at step 0 and both RNNs, with a loss plot. Installs what it needs first (idempotent), then works offline.
# Usage: scripts/demo.sh [MODEL]   (MODEL: a llama2.c .bin or HF Llama/Mistral folder; default stories260K)
#        SUPRA_DEMO_STEPS=N: N optimizer steps per arm (default: the configs' 300; the recipe splits them 1:2)
#        SUPRA_DEMO_DOCS=N training documents sampled from the teacher (default 4096: ~0.93M tokens, so that the
#        1.2M-token budget reads them ~1.3 times; the held-out set is always the same 64 documents)
#        SUPRA_BIN=path: use this supra binary instead of building one (the CI's shortened run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${SUPRA_BUILD_DIR:-$ROOT/build}
source "$ROOT/scripts/install_deps.sh"

MODEL=${1:-$ROOT/../shared/models/stories260K/stories260K.bin}
[ -e "$MODEL" ] || { echo "error: $MODEL: model not found (pass a llama2.c .bin or an HF model folder)" >&2; exit 2; }
OUT=${SUPRA_DEMO_DIR:-$ROOT/runs/demo}

if [ -z "${SUPRA_BIN:-}" ]; then
  echo "== building supra"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$(command -v $PY)" >/dev/null
  cmake --build "$BUILD" -j "${SUPRA_JOBS:-$(nproc)}" --target supra
fi
SUPRA=${SUPRA_BIN:-$BUILD/supra}

echo "== the pretrained model"
"$SUPRA" info --model "$MODEL"

echo "== training text and a held-out set: documents sampled from the teacher itself"
if [ ! -f "$OUT/data/manifest.json" ] || [ "$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['num_docs'])" "$OUT/data/manifest.json" 2>/dev/null)" != "${SUPRA_DEMO_DOCS:-4096}" ]; then
  rm -rf "$OUT/data"
  mkdir -p "$OUT"
  "$SUPRA" data sample --model "$MODEL" --out "$OUT/data" --docs "${SUPRA_DEMO_DOCS:-4096}" --max-tokens 256 --seed 1
fi
if [ ! -f "$OUT/heldout/manifest.json" ]; then
  rm -rf "$OUT/heldout"
  "$SUPRA" data sample --model "$MODEL" --out "$OUT/heldout" --docs 64 --max-tokens 256 --seed 1000
fi
"$SUPRA" data check "$OUT/data" --model "$MODEL" --quick
# A multiple-choice task built from held-out documents: after a document's first 24 tokens, which 8 tokens come
# next — its own, or those at the same place in 3 other documents?
$PY - "$OUT/heldout" "$OUT/task.jsonl" <<'PYEOF'
import json, random, sys
sys.path.insert(0, "scripts/shipped")
import data_shards
docs = [[int(t) for t in d] for d in data_shards.documents(sys.argv[1])]
docs = [d for d in docs if len(d) >= 33]
rng = random.Random(0)
with open(sys.argv[2], "w") as f:
    for i, d in enumerate(docs):
        others = rng.sample([o for j, o in enumerate(docs) if j != i], 3)
        choices = [o[25:33] for o in others]
        gold = rng.randrange(4)
        choices.insert(gold, d[25:33])
        f.write(json.dumps({"query_ids": d[1:25], "choices_ids": choices, "gold": gold}) + "\n")
PYEOF

evaluate() {  # evaluate NAME MODEL: held-out perplexity and the task, into $OUT/eval_NAME.json
  "$SUPRA" eval --model "$2" --tokens "$OUT/heldout" --task "$OUT/task.jsonl" --seq-len 256 --device cpu \
    --json "$OUT/eval_$1.json"
}
echo "== the teacher (softmax attention)"
evaluate teacher "$MODEL"
echo "== converted to SUPRA, before uptraining"
rm -rf "$OUT/converted"
"$SUPRA" convert --model "$MODEL" --out "$OUT/converted" --seed 0
evaluate converted "$OUT/converted"

lm_steps=() recipe_steps=()
if [ -n "${SUPRA_DEMO_STEPS:-}" ]; then
  lm_steps=(--train.steps "$SUPRA_DEMO_STEPS")
  recipe_steps=(--stage "attention.train.steps=$((SUPRA_DEMO_STEPS / 3))"
                --stage "distill.train.steps=$((SUPRA_DEMO_STEPS - SUPRA_DEMO_STEPS / 3))")
fi
echo "== plain SUPRA uptraining (train.objective = lm)"
rm -rf "$OUT/run"
"$SUPRA" train --config configs/stories260k_cpu.toml --model.path "$MODEL" --data.dir "$OUT/data" \
  --run.out_dir "$OUT/run" "${lm_steps[@]}"
evaluate uptrained "$OUT/run/checkpoints/$(cat "$OUT/run/checkpoints/latest")"

echo "== the distillation recipe at the same token budget: attention transfer, then KL to the teacher"
rm -rf "$OUT/distill"
"$SUPRA" train --config configs/stories260k_distill.toml --model.path "$MODEL" --data.dir "$OUT/data" \
  --run.out_dir "$OUT/distill" "${recipe_steps[@]}"

echo "== export the distilled RNN (Hugging Face folder) and evaluate it"
"$SUPRA" export --checkpoint "$OUT/distill/2-distill" --out "$OUT/export" --force
evaluate distilled "$OUT/export"

echo "== generate recurrently from the exported RNN (token ids: stories260K ships no tokenizer)"
"$SUPRA" generate --model "$OUT/export" --ids 1 --max-new-tokens 48 --seed 0 --temperature 0.8 --device cpu

echo "== results"
$PY scripts/tools/plot_loss.py "$OUT/run/metrics.jsonl" "$OUT/distill" --label "plain SUPRA (lm)" \
  --label "attention -> distill" --teacher-loss "$($PY -c "import json,math,sys; print(math.log(json.load(open(sys.argv[1]))['perplexity']['ppl']))" "$OUT/eval_teacher.json")" \
  --out "$OUT/loss.png" --title "Recovering $(basename "$MODEL") as a SUPRA RNN"
$PY scripts/tools/demo_table.py "$OUT"
echo "plot: $OUT/loss.png   exported model: $OUT/export   table: $OUT/results.json"
