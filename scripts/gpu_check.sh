#!/usr/bin/env bash
# The GPU check, in one invocation of at most ~9 minutes: builds only what it needs (Release: kernels, supra, the
# tests), then runs stages in priority order, each under its own time cap, and rewrites $OUT/gpu_check.json (and
# appends to $OUT/gpu_check.log) after every stage, so that a run cut short still reports. Without a GPU each stage
# runs a tiny CPU version or records "skipped: no GPU" (a smoke run of the script). Staging a bare node and what a
# run costs: docs/benchmarks.md, "The GPU check".
#
#   OUT=/path/to/results scripts/gpu_check.sh                 (OUT defaults to gpu-results/)
# Stages: build, data (training documents, sampled once), gtest (CUDA GTests), nccl (torchrun + ZeRO-2 on stories260K vs the CPU run, memory vs
#   memory_plan.py), kbench (kernels vs fla: B8 H32 T2048 D128 and B2 H16 T16384), decode (bench_decode.py,
#   SmolLM2 shape, batch 1 and 8, 1k-16k), uptrain (a 1B Llama shape at seq 2048, bf16: tokens/s, MFU), extra
#   (the SmolLM2-135M distillation recipe if staged, else stories260K's, for the minutes left).
# Environment: GPU_CHECK_BUDGET_S (540: all stages together), GPU_CHECK_STAGES (comma list; default all),
#   CAP_<STAGE>_S (a stage's cap, e.g. CAP_KBENCH_S=120), SUPRA_BUILD_DIR (build-gpu; an existing folder keeps its
#   configuration, e.g. build/ for a CPU dry run), SUPRA_JOBS (nproc), SUPRA_SHARED_DIR (../shared, else
#   .gpu/shared), GPU_CHECK_DATA (.gpu/train_data: a `supra data sample` folder; sampled once when absent),
#   FLA_MAX_CONFIGS (4: fla's autotuning bound), TRAIN_STEPS (200: the nccl stage's steps on a GPU),
#   KBENCH_SEGMENTS (auto: kbench also runs ours in the sequence-parallel mode, SUPRA_LINEAR_ATTENTION_SEGMENTS=auto;
#   empty: not).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-gpu-results}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
WORK=${GPU_CHECK_WORK:-$ROOT/.gpu-work/gpu_check}
rm -rf "$WORK" && mkdir -p "$WORK"
BUILD=${SUPRA_BUILD_DIR:-build-gpu}
BUILD=$(mkdir -p "$BUILD" && cd "$BUILD" && pwd)
JOBS=${SUPRA_JOBS:-$(nproc)}
SHARED=${SUPRA_SHARED_DIR:-$ROOT/../shared}
[ -d "$SHARED/models" ] || SHARED=$ROOT/.gpu/shared
BUDGET=${GPU_CHECK_BUDGET_S:-540}
REPORT=$OUT/gpu_check.json
LOG=$OUT/gpu_check.log
PY=${PYTHON:-python3}
T0=$(date +%s)
SAMPLER=""  # a background memory sampler (nccl stage), stopped on exit too
trap '[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null' EXIT
: > "$LOG"

log() { echo "[gpu_check $(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
report() { $PY scripts/tools/gpu_check_report.py "$@"; }

# ------------------------------------------------------------------------------------------------ the machine
GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then GPU=1; fi
DEVICE=cpu; [ $GPU = 1 ] && DEVICE=cuda
gpu_name=$( [ $GPU = 1 ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo "none")
torch_info=$($PY -c "import torch; print(torch.__version__, 'cuda', torch.version.cuda or 'none')" 2>/dev/null || echo "no torch")
case "$gpu_name" in  # dense bf16 peak, for MFU
  *H100*|*H200*|*H800*|*H20*) PEAK=989e12 ;;
  *A100*|*A800*) PEAK=312e12 ;;
  *L40S*) PEAK=362e12 ;;
  *) PEAK="" ;;
esac
report init "$REPORT" "gpu=$gpu_name" "gpu_available=$GPU" "torch=$torch_info" "commit=$(git rev-parse --short HEAD 2>/dev/null)" \
  "budget_s=$BUDGET" "host=$(hostname)" "cpus=$(nproc)" "build_dir=$BUILD"
log "device: $gpu_name; torch $torch_info; budget ${BUDGET}s; report $REPORT"

# ------------------------------------------------------------------------------------------------ stage runner
# A stage is a function; tmo runs a command under what is left of the stage's cap. A stage sets STAGE_STATUS to
# override ok/failed (e.g. "skipped: no GPU"), STAGE_NOTE, and STAGE_NUMBERS (a JSON file of its numbers).
tmo() {
  local r=$(( STAGE_DEADLINE - $(date +%s) ))
  (( r < 1 )) && r=1
  timeout --kill-after=15 "$r" "$@"
}
numbers() { report "$@" > "$WORK/numbers.json" 2>>"$LOG"; STAGE_NUMBERS=$WORK/numbers.json; }
wanted() { [ -z "${GPU_CHECK_STAGES:-}" ] || [[ ",$GPU_CHECK_STAGES," == *",$1,"* ]]; }
run_stage() {  # run_stage NAME DEFAULT_CAP_S
  local name=$1 var="CAP_${1^^}_S"
  local cap=${!var:-$2}
  local left=$(( BUDGET - ($(date +%s) - T0) - 5 ))  # 5 s for the last report
  if ! wanted "$name"; then report stage "$REPORT" "$name" "skipped: not in GPU_CHECK_STAGES" 0; return; fi
  (( cap > left )) && cap=$left
  if (( cap < 15 )); then
    log "stage $name: skipped (under 15 s left for it)"; report stage "$REPORT" "$name" "skipped: budget spent (under 15 s left for it)" 0; return
  fi
  STAGE_STATUS=""; STAGE_NOTE=""; STAGE_NUMBERS=""; STAGE_DEADLINE=$(( $(date +%s) + cap ))
  log "stage $name: start (cap ${cap}s)"
  local s=$(date +%s) rc=0
  "stage_$name" >> "$LOG" 2>&1 || rc=$?
  local secs=$(( $(date +%s) - s ))
  local status=$STAGE_STATUS
  if [ -z "$status" ]; then
    case $rc in 0) status=ok ;; 124|137) status="timeout (cap ${cap}s)" ;; *) status="failed (exit $rc)" ;; esac
  fi
  log "stage $name: $status in ${secs}s${STAGE_NOTE:+ ($STAGE_NOTE)}"
  report stage "$REPORT" "$name" "$status" "$secs" "$STAGE_NOTE" "$STAGE_NUMBERS"
}

# Training documents (the data stage samples them from stories260K once; token ids < 512 suit every vocabulary here).
DATA=${GPU_CHECK_DATA:-$ROOT/.gpu/train_data}
train_data() { [ -f "$DATA/manifest.json" ] && echo "$DATA"; }
no_data() { STAGE_STATUS="skipped: no training data (see the data stage)"; }

# ------------------------------------------------------------------------------------------------ stages
stage_build() {
  local args=()
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then  # a fresh folder: Release, node-local deps/, nvcc when there is one
    args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v $PY)" -DSUPRA_SHARED_DIR="$SHARED")
    [ -d deps/include/spdlog ] && args+=(-DSUPRA_DEPS_DIR="$ROOT/deps")
    local nvcc=${CUDACXX:-$(command -v nvcc || true)}
    [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
    [ -n "$nvcc" ] && args+=(-DCMAKE_CUDA_COMPILER="$nvcc")
  fi
  tmo cmake -S "$ROOT" -B "$BUILD" "${args[@]}" ${SUPRA_CMAKE_ARGS:-} || return $?
  tmo cmake --build "$BUILD" -j "$JOBS" --target supra supra_tests supra_kernels || return $?
  if grep -q "libtorch_cuda.so" "$BUILD/build.ninja" 2>/dev/null; then STAGE_NOTE="CUDA build"; else STAGE_NOTE="CPU build"; fi
}

stage_data() {
  if [ -f "$DATA/manifest.json" ]; then STAGE_STATUS="ok (reused $DATA)"; return 0; fi
  [ -f "$SHARED/models/stories260K/stories260K.bin" ] || { STAGE_STATUS="skipped: no stories260K in $SHARED/models"; return 0; }
  rm -rf "$DATA.tmp" && mkdir -p "$(dirname "$DATA")"
  tmo "$BUILD/supra" data sample --model "$SHARED/models/stories260K/stories260K.bin" --out "$DATA.tmp" --docs 128 \
    --max-tokens 256 --seed 1 || return $?
  mv "$DATA.tmp" "$DATA"
}

stage_gtest() {
  [ $GPU = 1 ] || STAGE_NOTE="no GPU: the Cuda* tests run and skip themselves"
  tmo "$BUILD/tests/supra_tests" --gtest_filter='Cuda*:*/Cuda*' --gtest_color=no --gtest_output=json:"$OUT/gtest_cuda.json"
  local rc=$?
  numbers gtest "$OUT/gtest_cuda.json"
  return $rc
}

stage_nccl() {
  local model=$SHARED/models/stories260K/stories260K.bin
  [ -f "$model" ] || { STAGE_STATUS="skipped: no $model"; return 0; }
  local steps=${TRAIN_STEPS:-200} backend=nccl
  [ $GPU = 1 ] || { steps=20; backend=gloo; STAGE_NOTE="no GPU: torchrun + ZeRO-2 over Gloo on the CPU; no GPU memory"; }
  local data; data=$(train_data) || { no_data; return 0; }
  local common=(train --config configs/stories260k_cpu.toml --model.path "$model" --data.dir "$data"
                --train.steps "$steps" --train.precision fp32 --run.eval_every 100 --run.save_every 0)
  "$BUILD/supra" info --model "$model" > "$WORK/info_260k.txt" 2>/dev/null
  tmo "$BUILD/supra" "${common[@]}" --train.device cpu --run.out_dir "$WORK/nccl_cpu" > "$WORK/nccl_cpu.log" 2>&1 ||
    { tail -5 "$WORK/nccl_cpu.log"; return 1; }
  local launcher=(torchrun)
  command -v torchrun >/dev/null || launcher=($PY -m torch.distributed.run)
  if [ $GPU = 1 ]; then  # the rank's peak GPU memory, sampled every 0.2 s
    ( peak=0; while sleep 0.2; do
        m=$(nvidia-smi --query-compute-apps=used_memory --format=csv,noheader,nounits 2>/dev/null | sort -n | tail -1)
        if [ -n "$m" ] && [ "$m" -gt "$peak" ]; then peak=$m; echo "$peak" > "$WORK/nccl_peak_mib"; fi
      done ) &
    SAMPLER=$!
  fi
  tmo "${launcher[@]}" --no-python --nproc-per-node 1 --master-port 29517 "$BUILD/supra" "${common[@]}" \
    --train.device "$DEVICE" --dist.zero 2 --run.out_dir "$WORK/nccl_dist" > "$WORK/nccl_dist.log" 2>&1
  local rc=$?
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null; SAMPLER=""
  cp "$WORK/nccl_dist.log" "$OUT/nccl_dist.log"
  grep -m1 "joined the process group" "$WORK/nccl_dist.log"
  grep -q "via $backend" "$WORK/nccl_dist.log" || { echo "the run did not join a $backend process group"; rc=1; }
  numbers train cpu="$WORK/nccl_cpu/metrics.jsonl" "$DEVICE-$backend-zero2=$WORK/nccl_dist/metrics.jsonl" \
    --info "$WORK/info_260k.txt" --micro-batch 16 --seq-len 256 --zero 2 \
    --measured-mib "$(cat "$WORK/nccl_peak_mib" 2>/dev/null)"
  grep -q '"agree": false' "$STAGE_NUMBERS" && { STAGE_STATUS="failed: losses disagree with the CPU run"; }
  return $rc
}

stage_kbench() {
  if [ $GPU = 0 ]; then
    STAGE_STATUS="skipped: no GPU (ran bench_kernels.py --dry-run: plan and float64 reference)"
    tmo $PY scripts/tools/bench_kernels.py --dry-run --segments "${KBENCH_SEGMENTS-auto}"
    return
  fi
  [ -d third_party/fla ] || STAGE_NOTE="no third_party/fla: ours only"
  local limit=$(( STAGE_DEADLINE - $(date +%s) - 20 ))  # the benchmark stops itself and keeps what it measured
  (( limit < 10 )) && limit=10
  tmo env TRITON_CACHE_AUTOTUNING=1 $PY scripts/tools/bench_kernels.py --lib "$BUILD/libsupra_kernels.so" \
    --fla third_party --processes 1 --shape-names "7B layer;few heads, long" --fla-max-configs "${FLA_MAX_CONFIGS:-4}" \
    --segments "${KBENCH_SEGMENTS-auto}" --time-limit $limit --json "$OUT/bench_kernels.json"
  local rc=$?
  numbers kbench "$OUT/bench_kernels.json"
  return $rc
}

stage_decode() {
  # SUPRA's fast path (eager and as a CUDA graph) and reference path against the full K/V cache and transformers'
  # generate on the export (TOVA's token-by-token prefill is too slow for this budget: --tova-max-context 0)
  local args=(--shape smollm2-135m --contexts 1024,16384 --batches 1,8 --new-tokens 32 --tova-max-context 0
              --hf-max-context 1024 --models supra,graph,reference,transformer,hf --device cuda --dtype bf16)
  [ $GPU = 1 ] || { args=(--shape tiny --contexts 256,1024 --batches 1,8 --new-tokens 8 --tova-max-context 0
                          --models supra,reference,transformer --device cpu --dtype f32)
                   STAGE_NOTE="no GPU: tiny shape on the CPU"; }
  tmo $PY scripts/tools/bench_decode.py --supra "$BUILD/supra" "${args[@]}" --json "$OUT/bench_decode.json"
  local rc=$?
  numbers decode "$OUT/bench_decode.json"
  return $rc
}

stage_uptrain() {
  # A randomly initialised Llama (bench_decode.py's shapes: llama-1b = 2048 hidden, 16 layers, 32/8 heads, FFN 8192,
  # vocab 32000), converted on the fly by supra train; bf16 autocast at seq 2048.
  local shape=llama-1b seq=2048 steps=30 gb=8 mb=4 prec=bf16
  [ $GPU = 1 ] || { shape=tiny; seq=256; steps=10; prec=fp32; STAGE_NOTE="no GPU: tiny shape, fp32, seq 256 on the CPU"; }
  local data; data=$(train_data) || { no_data; return 0; }
  tmo $PY - "$shape" "$WORK/model_$shape" "$DEVICE" <<'PYEOF' || return 1
import sys, torch
sys.path.insert(0, "scripts/tools")
from bench_decode import SHAPES
from transformers import LlamaConfig, LlamaForCausalLM
shape, out, device = sys.argv[1:]
h, L, nh, nkv, inter, vocab = SHAPES[shape]
cfg = LlamaConfig(hidden_size=h, num_hidden_layers=L, num_attention_heads=nh, num_key_value_heads=nkv,
                  intermediate_size=inter, vocab_size=vocab, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
torch.manual_seed(0)
with torch.device(device):  # initialised where it is fast
    model = LlamaForCausalLM(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32)
model.save_pretrained(out, safe_serialization=True)
print(f"{shape}: {sum(p.numel() for p in model.parameters())} parameters")
PYEOF
  local params
  params=$("$BUILD/supra" info --model "$WORK/model_$shape" 2>/dev/null | sed -n 's/^parameters: *\([0-9]*\).*/\1/p')
  tmo "$BUILD/supra" train --config configs/stories260k_cpu.toml --model.path "$WORK/model_$shape" --data.dir "$data" \
    --data.seq_len $seq --data.eval_samples 1 --train.steps $steps --train.global_batch $gb --train.micro_batch $mb \
    --train.device "$DEVICE" --train.precision $prec --optim.lr 1e-4 --optim.min_lr 1e-5 --optim.warmup_steps 5 \
    --run.log_every 5 --run.eval_every 0 --run.save_every 0 --run.out_dir "$WORK/uptrain" > "$WORK/uptrain.log" 2>&1
  local rc=$?
  cp "$WORK/uptrain.log" "$OUT/uptrain.log"
  numbers uptrain "$WORK/uptrain/metrics.jsonl" --params "${params:-0}" --log "$WORK/uptrain.log" ${PEAK:+--peak-flops $PEAK}
  return $rc
}

stage_extra() {
  # The SmolLM2-135M recovery recipe (configs/smollm2_135m_distill.toml's GPU command) when the model and data are
  # staged in runs/, else stories260K's (configs/stories260k_distill.toml); stopped (SIGTERM: a clean stop with a
  # checkpoint) when the budget ends.
  local cmd
  if [ $GPU = 1 ] && [ -f runs/models/smollm2-135m/config.json ] && [ -f runs/data/smollm2/manifest.json ]; then
    cmd=(train --config configs/smollm2_135m_distill.toml --train.device cuda --train.precision bf16
         --data.seq_len 2048 --train.global_batch 24 --train.micro_batch 8 --run.eval_every 100
         --run.save_every 100 --stage attention.train.steps=100 --stage distill.train.steps=920)
    STAGE_NOTE="SmolLM2-135M distillation recipe"
  else
    local data; data=$(train_data) || { no_data; return 0; }
    cmd=(train --config configs/stories260k_distill.toml --model.path "$SHARED/models/stories260K/stories260K.bin"
         --data.dir "$data" --train.device "$DEVICE")
    if [ $GPU = 1 ]; then
      STAGE_NOTE="stories260K distillation recipe (SmolLM2-135M not staged in runs/)"
    else
      cmd+=(--stage attention.train.steps=5 --stage distill.train.steps=5)
      STAGE_NOTE="no GPU: stories260K distillation recipe, 5 + 5 steps on the CPU"
    fi
  fi
  tmo "$BUILD/supra" "${cmd[@]}" --run.out_dir "$WORK/extra" > "$WORK/extra.log" 2>&1
  local rc=$?
  cp "$WORK/extra.log" "$OUT/extra.log"
  local runs=()
  while IFS= read -r f; do runs+=("$(basename "$(dirname "$f")")=$f"); done < <(find "$WORK/extra" -name metrics.jsonl | sort)
  numbers train "${runs[@]}" --compare no
  [ $rc = 124 ] && { STAGE_STATUS="ok (stopped at the budget)"; rc=0; }
  return $rc
}

run_stage build 300
run_stage data 90
run_stage gtest 150
run_stage nccl 90
run_stage kbench 110
run_stage decode 90
run_stage uptrain 120
run_stage extra 600
log "done in $(( $(date +%s) - T0 ))s: $REPORT"
$PY - "$REPORT" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
for name, s in d["stages"].items():
    print(f"{name:8s} {s['status']:40.40s} {s['seconds']:>4}s  {s.get('note', '')}")
bad = [n for n, s in d["stages"].items() if s["status"].startswith(("failed", "timeout"))]
sys.exit(1 if bad else 0)
PYEOF
