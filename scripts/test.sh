#!/usr/bin/env bash
# Installs what supra needs (idempotent), builds it, and runs the whole test suite (GoogleTest + Python
# cross-checks against HF transformers) through CTest. Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${SUPRA_BUILD_DIR:-$ROOT/build}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# 1. C++ toolchain and header libraries from Debian (skipped where present; skipped entirely without apt).
APT_PKGS=(cmake ninja-build g++ libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev)
if command -v dpkg >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[test.sh] installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# 2. Python: LibTorch comes from the torch wheel; transformers & co. for the cross-checks.
PY=${PYTHON:-python3}
if ! $PY -c "import torch" 2>/dev/null; then
  echo "[test.sh] installing torch==2.13.0"
  $PY -m pip install -q torch==2.13.0
fi
pip_missing=()
for m in transformers safetensors numpy pytest; do $PY -c "import $m" 2>/dev/null || pip_missing+=("$m"); done
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "[test.sh] installing ${pip_missing[*]}"
  $PY -m pip install -q "${pip_missing[@]}"
fi

# 3. Configure, build, test.
JOBS=${SUPRA_JOBS:-$(nproc)}
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython3_EXECUTABLE="$(command -v $PY)"
cmake --build "$BUILD" -j "$JOBS"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" "$@"
