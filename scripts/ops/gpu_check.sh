#!/usr/bin/env bash
# One call on a GPU node: build supra against the node's CUDA PyTorch (scripts/ops/gpu_test.sh), run the GPU tests, then
# the whole suite, then the kernel benchmark (scripts/tools/bench_kernels.py). Logs and the benchmark JSON go to
# ${OUT:-gpu-results}/. Needs deps/ (scripts/ops/gather_deps.sh) and, for the benchmark comparator, third_party/fla.
# Test data: ../shared when present, else .gpu/shared (a copy of the shared models folder).
# Usage: scripts/ops/gpu_check.sh [tests|bench|quick|train|all]   (default all; quick = tests + primary bench shape;
#        train = uptrain stories260K on the GPU in fp32 and bf16 autocast next to a CPU run, on .gpu/train_data
#        or data sampled from the model)
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
OUT=${OUT:-gpu-results}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
BUILD=${SUPRA_BUILD_DIR:-build-gpu}
shared_dir="$PWD/../shared"
[ -d "$shared_dir/models" ] || shared_dir="$PWD/.gpu/shared"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
git rev-parse --short HEAD 2>/dev/null | tee -a "$OUT/device.txt"
rc=0
if [ "$what" != bench ] && [ "$what" != train ]; then
  export SUPRA_CMAKE_ARGS="-DSUPRA_SHARED_DIR=$shared_dir"
  start=$(date +%s)
  if ! scripts/ops/gpu_test.sh --build-only > "$OUT/build.log" 2>&1; then
    echo "BUILD FAILED"; grep -E "error|Error" "$OUT/build.log" | head -40; tail -30 "$OUT/build.log"; exit 1
  fi
  echo "build: $(( $(date +%s) - start )) s"
  ctest_excl=""
  python3 -c "import pytest" 2>/dev/null || { ctest_excl="^py_"; echo "(pytest missing: python tests skipped)"; }
  "$BUILD/tests/supra_tests" --gtest_filter='Cuda*' --gtest_color=no > "$OUT/gtest_cuda.log" 2>&1 || rc=1
  grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|error|Expected|Which is|rel_rms|actual" "$OUT/gtest_cuda.log" | head -80
  tail -3 "$OUT/gtest_cuda.log"
  (cd "$BUILD" && ctest --output-on-failure -j 8 ${ctest_excl:+-E "$ctest_excl"} > "$OUT/ctest.log" 2>&1) || rc=1
  grep -E "tests passed|FAILED|Failed|\*\*\*" "$OUT/ctest.log" | head -30
  grep -A30 "crashed; backtrace" "$OUT/ctest.log" | head -40
fi
if [ "$what" = train ] || [ "$what" = all ]; then
  [ -x "$BUILD/supra" ] || SUPRA_CMAKE_ARGS="-DSUPRA_SHARED_DIR=$shared_dir" scripts/ops/gpu_test.sh --build-only > "$OUT/build.log" 2>&1
  model="$shared_dir/models/stories260K/stories260K.bin"
  tdir=$(mktemp -d); data=.gpu/train_data
  if [ ! -f "$data/manifest.json" ]; then
    data="$tdir/data"; "$BUILD/supra" data sample --model "$model" --out "$data" --docs 256 --max-tokens 128 --seed 1 > "$OUT/sample.log" 2>&1
  fi
  # cpu/cuda single process, and cuda under torchrun (world size 1: the NCCL process group and ZeRO-2 path).
  for run in cpu:fp32 cuda:fp32 cuda:bf16 cuda:fp32:nccl; do
    IFS=: read -r dev prec launch <<< "$run"; name="$dev-$prec${launch:+-$launch}"
    start=$(date +%s)
    launcher=(); extra=()
    if [ "$launch" = nccl ]; then
      launcher=(python3 -m torch.distributed.run --no-python --nproc-per-node 1 --master-port 29517); extra=(--dist.zero 2)
    fi
    "${launcher[@]}" "$BUILD/supra" train --config configs/stories260k_cpu.toml --model.path "$model" --data.dir "$data" \
      --run.out_dir "$tdir/$name" --train.device "$dev" --train.precision "$prec" --train.steps "${TRAIN_STEPS:-200}" \
      "${extra[@]}" > "$tdir/$name.log" 2>&1 || { rc=1; echo "train $name FAILED"; tail -5 "$tdir/$name.log"; }
    grep -m1 "joined the process group" "$tdir/$name.log" || true
    cp "$tdir/$name/metrics.jsonl" "$OUT/train_$name.metrics.jsonl" 2>/dev/null
    echo "train $name: $(( $(date +%s) - start )) s"
  done
  python3 - "$OUT" <<'PYEOF'
import json, os, sys
for name in ("cpu-fp32", "cuda-fp32", "cuda-bf16", "cuda-fp32-nccl"):
    p = os.path.join(sys.argv[1], f"train_{name}.metrics.jsonl")
    if not os.path.exists(p): print(name, "no metrics"); continue
    rows = [json.loads(l) for l in open(p)]
    ev = [r for r in rows if "eval_loss" in r]; tr = [r for r in rows if "loss" in r]
    tps = [r.get("tokens_per_s") for r in tr if r.get("tokens_per_s")]
    evs = " ".join("%d:%.4f" % (r["step"], r["eval_loss"]) for r in ev)
    last = tr[-1]["loss"] if tr else float("nan")
    print("%-10s eval_loss %s  last train loss %.4f  tokens/s %.0f" % (name, evs, last, tps[-1] if tps else 0))
PYEOF
fi
if [ "$what" != tests ] && [ "$what" != train ]; then
  mode=""; [ "$what" = quick ] && mode="--quick"
  [ -n "${BENCH_TIME_LIMIT:-}" ] && mode="$mode --time-limit $BENCH_TIME_LIMIT"
  python3 scripts/tools/bench_kernels.py --lib "$BUILD/libsupra_kernels.so" --fla third_party --json "$OUT/bench_kernels.json" \
    $mode > "$OUT/bench.log" 2> "$OUT/bench.err" || rc=1
  cat "$OUT/bench.log"; tail -20 "$OUT/bench.err"
fi
exit $rc
