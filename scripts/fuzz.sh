#!/usr/bin/env bash
# Fuzzes supra's readers of untrusted files with libFuzzer (clang, ASan + UBSan): safetensors, config.json, token
# shards, tokenizer.json and the training TOML (tests/fuzz). Builds the harnesses in their own build folder, then runs
# each for SECONDS (default 60) on a corpus that grows across runs (<build>/corpus/<harness>, seeded from
# tests/fuzz/corpus). A finding (crash, sanitizer report, uncaught exception, broken promise) is saved under
# <build>/findings/<harness>/ and makes the script exit 1; reproduce it with `<build>/tests/fuzz/fuzz_<harness> FILE`, then
# add it as a regression test. Usage: scripts/fuzz.sh [SECONDS]   (SUPRA_FUZZ_JOBS harnesses at a time, default: cores;
# SUPRA_FUZZ_HARNESSES: a space-separated subset)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${1:-60}
BUILD=${SUPRA_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${SUPRA_FUZZ_JOBS:-$(nproc)}
read -r -a HARNESSES <<< "${SUPRA_FUZZ_HARNESSES:-safetensors model_config shards tokenizer train_toml}"
source "$ROOT/scripts/install_deps.sh"  # the C++ dependencies and LibTorch, as for the main build

# clang with the libFuzzer runtime and llvm-symbolizer for readable reports (Debian: clang-19, libclang-rt-19-dev, llvm-19).
CXX_FUZZ=${SUPRA_FUZZ_CXX:-clang++-19}
LLVM_BIN=$(dirname "$(readlink -f "$(command -v "$CXX_FUZZ" || echo /nonexistent)")")
if [ ! -x "$LLVM_BIN/clang" ] || [ ! -d "$LLVM_BIN/../lib/clang" ] || [ ! -x "$LLVM_BIN/llvm-symbolizer" ]; then
  echo "[supra] installing clang-19 and libFuzzer"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang-19 libclang-rt-19-dev llvm-19
fi
CC_FUZZ=${CXX_FUZZ/clang++/clang}

start=$(date +%s)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$CC_FUZZ" \
  -DCMAKE_CXX_COMPILER="$CXX_FUZZ" -DSUPRA_FUZZ=ON -DSUPRA_BUILD_TESTS=OFF -DSUPRA_CUDA_COMPILE_CHECK=OFF \
  -DPython3_EXECUTABLE="$(command -v $PY)" > "$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target supra_fuzzers
echo "[supra] fuzz harnesses built in $(( $(date +%s) - start )) s; fuzzing each for ${SECONDS_EACH} s, $JOBS at a time"

# LibTorch's own allocations outlive the harness (static caches): leak checking would report them, not reader leaks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(dirname "$(readlink -f "$(command -v "$CXX_FUZZ")")")/llvm-symbolizer}
run_one() {
  local h=$1 corpus="$BUILD/corpus/$1" findings="$BUILD/findings/$1/"
  mkdir -p "$corpus" "$findings"
  "$BUILD/tests/fuzz/fuzz_$h" -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$findings" "$corpus" "$ROOT/tests/fuzz/corpus/$h" > "$BUILD/fuzz_$h.log" 2>&1
}
pids=(); names=(); failed=()
for h in "${HARNESSES[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
  run_one "$h" & pids+=($!); names+=("$h")
done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done

printf '%-14s %12s %10s %8s %8s  %s\n' harness runs exec/s cov corpus result
for h in "${HARNESSES[@]}"; do
  log="$BUILD/fuzz_$h.log"
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  n=$(find "$BUILD/corpus/$h" -type f | wc -l)
  res=ok; [[ " ${failed[*]} " == *" $h "* ]] && res="FINDING: see $log and $BUILD/findings/$h/"
  printf '%-14s %12s %10s %8s %8s  %s\n' "$h" "${runs:-?}" "${speed:-?}" "${cov:-?}" "$n" "$res"
done
if [ ${#failed[@]} -gt 0 ]; then
  for h in "${failed[@]}"; do echo "--- fuzz_$h"; grep -E -A25 "ERROR|FUZZ FINDING|deadly|terminate" "$BUILD/fuzz_$h.log" | head -60; done
  exit 1
fi
echo "[supra] fuzzing: no finding ($(( $(date +%s) - start )) s in all)"
