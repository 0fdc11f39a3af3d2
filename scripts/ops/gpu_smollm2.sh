#!/usr/bin/env bash
# On a GPU node (issue 9's long run): reassemble the SmolLM2-135M GGUF staged by scripts/ops/stage_smollm2_gpu.sh,
# dequantise it to an HF folder, measure the teacher (full cache, TOVA and window at SUPRA's state size), uptrain
# the converted model on the SOTU shards for TRAIN_STEPS steps (default 1000 × 24 × 2048 ≈ 49M tokens), evaluate the
# result and write everything (≤ 8 files) to $OUT.
#
#   OUT=$OUT bash scripts/ops/gpu_smollm2.sh            # on the node, after the staging calls
# Environment: TRAIN_STEPS, SEQ (2048), KV (192: the bf16 K/V tokens per layer with SUPRA's 4.2 MiB of state),
#   DEVICE (cuda; cpu for a dry run), EVAL_DOCS (0: all held-out documents), SUPRA_BUILD_DIR (build-gpu).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-results}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
BUILD=${SUPRA_BUILD_DIR:-build-gpu}
STEPS=${TRAIN_STEPS:-1000}; SEQ=${SEQ:-2048}; KV=${KV:-192}; DEVICE=${DEVICE:-cuda}; EVAL_DOCS=${EVAL_DOCS:-0}
AUX=.carry/smollm2.aux
WORK=${SMOLLM2_WORK:-.gpu-work/smollm2}
mkdir -p "$WORK"
[ -x "$BUILD/supra" ] || scripts/ops/gpu_test.sh --build-only > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }

# 1. The GGUF, checked against the staged sha256, and the HF folder.
gguf="$WORK/$(cat "$AUX/gguf.name")"
if [ ! -f "$WORK/model/gguf_source.json" ]; then
  cat .carry/smollm2.part*.d/piece > "$gguf"
  [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$(cat "$AUX/gguf.sha256")" ] || {
    echo "error: reassembled GGUF does not match its sha256 (a piece is missing: $(ls -d .carry/smollm2.part*.d | tr '\n' ' '))"
    exit 1; }
  rm -rf "$WORK/model.tmp"
  PYTHONPATH="$AUX/pylib${PYTHONPATH:+:$PYTHONPATH}" python3 scripts/tools/gguf_to_hf.py "$gguf" --out "$WORK/model.tmp"
  mv "$WORK/model.tmp" "$WORK/model"
fi
M="$WORK/model"; DATA="$AUX/data"
eval_args=(--tokens "$DATA/heldout" --seq-len "$SEQ" --device "$DEVICE" --dtype bf16)
[ "$EVAL_DOCS" = 0 ] || eval_args+=(--max-docs "$EVAL_DOCS")

# 2. The teacher: full cache, and bounded caches of KV tokens (TOVA, sliding window).
for pol in full tova window; do
  kv=(); [ $pol = full ] || kv=(--kv-size "$KV")
  "$BUILD/supra" eval --model "$M" "${eval_args[@]}" --kv-policy $pol "${kv[@]}" --json "$WORK/eval_teacher_$pol.json" \
    2>&1 | grep -E "perplexity|error"
done

# 3. Uptraining (converted on the fly), then the uptrained RNN on the same tokens.
start=$(date +%s)
"$BUILD/supra" train --config configs/smollm2_135m.toml --model.path "$M" --data.dir "$DATA/train" \
  --data.seq_len "$SEQ" --train.steps "$STEPS" --train.device "$DEVICE" --run.out_dir "$WORK/run" \
  --run.resume auto > "$WORK/train.log" 2>&1 || { tail -20 "$WORK/train.log"; exit 1; }
echo "train: $(( $(date +%s) - start )) s"; grep -E "eval at step" "$WORK/train.log" | tail -8
cp "$WORK/run/metrics.jsonl" "$OUT/smollm2_metrics.jsonl"
CK="$WORK/run/checkpoints/$(cat "$WORK/run/checkpoints/latest")"
"$BUILD/supra" eval --model "$CK" "${eval_args[@]}" --json "$WORK/eval_supra.json" 2>&1 | grep -E "perplexity|error"
"$BUILD/supra" generate --model "$CK" --tokenizer "$M" --prompt "The state of the Union is" --max-new-tokens 40 \
  --temperature 0 --device "$DEVICE" > "$WORK/sample.txt" 2>/dev/null || true

# 4. One JSON with everything (the results table of docs/results.md).
python3 - "$WORK" "$OUT/smollm2_results.json" <<'PYEOF'
import json, os, sys
work, out = sys.argv[1:]
res = {}
for name in ("teacher_full", "teacher_tova", "teacher_window", "supra"):
    p = os.path.join(work, f"eval_{name}.json")
    if os.path.exists(p):
        res[name] = json.load(open(p))["perplexity"]
rows = [json.loads(l) for l in open(os.path.join(work, "run", "metrics.jsonl"))]
tr = [r for r in rows if "loss" in r]
res["train"] = {"steps": tr[-1]["step"], "tokens": tr[-1]["tokens"], "tokens_per_s": tr[-1].get("tokens_per_s"),
                "eval": [(r["step"], r["tokens"], r["eval_ppl"]) for r in rows if "eval_ppl" in r]}
sample = os.path.join(work, "sample.txt")
res["sample"] = open(sample).read() if os.path.exists(sample) else ""
json.dump(res, open(out, "w"), indent=1)
for k in ("teacher_full", "teacher_tova", "teacher_window", "supra"):
    if k in res: print(f"{k:15s} ppl {res[k]['ppl']:.3f} on {res[k]['tokens']} tokens")
print("train", res["train"]["steps"], "steps,", res["train"]["tokens"], "tokens,", res["train"]["tokens_per_s"], "tok/s")
PYEOF
