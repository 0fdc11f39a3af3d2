#!/usr/bin/env bash
# Installs what supra needs (idempotent), builds it, and runs the whole test suite (GoogleTest + Python
# cross-checks against HF transformers) through CTest. Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${SUPRA_BUILD_DIR:-$ROOT/build}
source "$ROOT/scripts/install_deps.sh"   # apt + pip packages (idempotent)

# Configure, build, test.
JOBS=${SUPRA_JOBS:-$(nproc)}
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$(command -v $PY)"
cmake --build "$BUILD" -j "$JOBS"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" "$@"
