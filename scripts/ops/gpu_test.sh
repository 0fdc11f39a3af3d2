#!/usr/bin/env bash
# Builds supra against the node's CUDA PyTorch and runs the whole test suite (GPU tests included) with no package
# manager and no network: needs python3 with torch (CUDA), nvcc, cmake, ninja and the ./deps folder made by
# scripts/ops/gather_deps.sh. Usage: scripts/ops/gpu_test.sh [--build-only] [extra ctest args]
# SUPRA_CMAKE_ARGS adds configure options (e.g. -DSUPRA_SHARED_DIR=/path/to/shared); SUPRA_BUILD_TARGETS limits the build
# (e.g. "supra_kernels" for the benchmark alone).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -d deps/include/spdlog ] || { echo "error: deps/ is missing: run scripts/ops/gather_deps.sh on a machine with apt, then copy deps/ here" >&2; exit 2; }
BUILD=${SUPRA_BUILD_DIR:-build-gpu}
NVCC=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSUPRA_DEPS_DIR="$PWD/deps" \
      -DCMAKE_CUDA_COMPILER="$NVCC" -DPython3_EXECUTABLE="$(command -v python3)" ${SUPRA_CMAKE_ARGS:-}
cmake --build "$BUILD" -j "$(nproc)" ${SUPRA_BUILD_TARGETS:+--target $SUPRA_BUILD_TARGETS} -- -k 0
if [ "${1:-}" = --build-only ]; then exit 0; fi
ctest --test-dir "$BUILD" --output-on-failure -j 4 "$@"
