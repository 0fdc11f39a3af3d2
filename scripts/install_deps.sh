# Sourced by scripts/test.sh and scripts/demo.sh: installs what supra needs, idempotently (Debian packages for the
# C++ toolchain and header libraries, the torch wheel for LibTorch, Python packages for data preparation, the HF
# cross-checks and plots). Sets PY (the Python interpreter). Skips apt where there is none (e.g. GPU nodes).
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# 1. C++ toolchain and header libraries from Debian (skipped where present; skipped entirely without apt).
APT_PKGS=(cmake ninja-build g++ libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev
          libsentencepiece-dev libpcre2-dev libgloo-dev)
if command -v dpkg >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[supra] installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# 2. Python: LibTorch comes from the torch wheel; transformers & co. for the cross-checks.
PY=${PYTHON:-python3}
if ! $PY -c "import torch" 2>/dev/null; then
  echo "[supra] installing torch==2.13.0"
  $PY -m pip install -q torch==2.13.0
fi
pip_missing=()
for m in transformers safetensors numpy pytest pyarrow tokenizers sentencepiece matplotlib; do $PY -c "import $m" 2>/dev/null || pip_missing+=("$m"); done
if [ ${#pip_missing[@]} -gt 0 ]; then
  echo "[supra] installing ${pip_missing[*]}"
  $PY -m pip install -q "${pip_missing[@]}"
fi

