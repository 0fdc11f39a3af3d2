#!/usr/bin/env bash
# Installs what supra needs (idempotent), builds it, and runs the whole test suite (GoogleTest + Python
# cross-checks against HF transformers) through CTest, after a short fuzzing pass (scripts/fuzz.sh).
# Usage: scripts/test.sh [extra ctest args]   (SUPRA_FUZZ_SECONDS: seconds per fuzz harness, 0 = skip; default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${SUPRA_BUILD_DIR:-$ROOT/build}
source "$ROOT/scripts/install_deps.sh"   # apt + pip packages (idempotent)

JOBS=${SUPRA_JOBS:-$(nproc)}
# The CUDA build check (scripts/tools/cuda_build_check.sh): the CUDA- and NCCL-only code compiled against the CUDA torch
# wheel's headers, in a build folder of its own. Its failure fails the run, after the CPU suite has run.
# SUPRA_SKIP_CUDA_CHECK=1 skips it.
cuda_rc=0
SUPRA_JOBS=$JOBS PYTHON=$PY bash "$ROOT/scripts/tools/cuda_build_check.sh" || cuda_rc=$?

# Configure, build, test.
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$(command -v $PY)"
cmake --build "$BUILD" -j "$JOBS"
# A short fuzzing pass over the readers of untrusted files (scripts/fuzz.sh; SUPRA_FUZZ_SECONDS=0 skips it).
# A finding fails the run after the suite has run.
FUZZ_SECONDS=${SUPRA_FUZZ_SECONDS:-60}
fuzz_rc=0
if [ "$FUZZ_SECONDS" != 0 ]; then bash "$ROOT/scripts/fuzz.sh" "$FUZZ_SECONDS" || fuzz_rc=$?; fi
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" "$@"
if [ "$cuda_rc" != 0 ]; then echo "[supra] the CUDA build check failed (see its output above)" >&2; exit "$cuda_rc"; fi
if [ "$fuzz_rc" != 0 ]; then echo "[supra] fuzzing found a problem (see its output above)" >&2; exit "$fuzz_rc"; fi
