#!/usr/bin/env bash
# Gathers supra's C++ dependencies (CLI11, spdlog, fmt, nlohmann-json headers, the GoogleTest sources, and the
# SentencePiece and PCRE2 headers + shared libraries for the tokenizers) into ./deps, so that an air-gapped node with
# only PyTorch, nvcc, cmake and ninja can build supra: copy the repository with its deps/ folder there and run
# scripts/ops/gpu_test.sh (CMake links deps/lib and the binaries find it through their RPATH). Run this on a machine with
# Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/../.."
PKGS=(libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev libsentencepiece-dev libpcre2-dev
      libgloo-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
rm -rf deps.tmp && mkdir -p deps.tmp/include
for d in CLI spdlog fmt nlohmann gloo; do cp -rL "/usr/include/$d" deps.tmp/include/; done  # gloo: headers only (c10d Gloo)
cp -rL /usr/src/googletest deps.tmp/googletest
# Tokenizer libraries: headers, and the shared libraries with their symlink chains (lib*.so -> .so.N -> file).
# Both depend only on libc/libstdc++ (libsentencepiece bundles its protobuf-lite).
mkdir -p deps.tmp/lib
cp -L /usr/include/sentencepiece_processor.h /usr/include/pcre2.h deps.tmp/include/
for lib in libsentencepiece.so libpcre2-8.so; do
  dev=$(dpkg -L libsentencepiece-dev libpcre2-dev | grep "/$lib\$" | head -1)
  [ -n "$dev" ] || { echo "error: $lib not found in libsentencepiece-dev / libpcre2-dev" >&2; exit 1; }
  cp -a "$dev"* deps.tmp/lib/
done
rm -rf deps && mv deps.tmp deps
echo "gathered into $(pwd)/deps ($(du -sh deps | cut -f1))"
