#!/usr/bin/env bash
# Builds and runs bench_loader: tokens/s of the training data loader on one core, on a synthetic data folder of
# 128M tokens created on the fly in $TMPDIR (~260 MB, removed afterwards). Extra arguments go to bench_loader
# (--dir DATA to time a real prepared folder, --tokens, --seq-len, --batch, --vocab, --passes).
# Usage: scripts/tools/bench_loader.sh [args]    (SUPRA_BUILD_DIR: build folder, default build/)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${SUPRA_BUILD_DIR:-build}
[ -f "$BUILD/build.ninja" ] || cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target bench_loader -j "${SUPRA_JOBS:-$(nproc)}"
if command -v taskset >/dev/null; then exec taskset -c 0 "$BUILD/bench/bench_loader" "$@"; fi
exec "$BUILD/bench/bench_loader" "$@"
