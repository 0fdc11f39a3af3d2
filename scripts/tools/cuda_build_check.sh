#!/usr/bin/env bash
# CUDA build check for machines without a GPU (CI): compiles what only a CUDA build compiles (the CMake target
# supra_cuda_build_check: NCCL communicator, CUDA op glue, trainer CUDA branches, CUDA GTests, kernels for sm_80/sm_90a)
# against the headers of the CUDA torch wheel, fetched once into a cache. Prints the time it took.
#
#   scripts/tools/cuda_build_check.sh          # scripts/test.sh runs it first; SUPRA_SKIP_CUDA_CHECK=1 skips it
# Environment: SUPRA_CUDA_CACHE (~/.cache/supra/torch-cuda-2.14.1: the wheels' headers and CMake files, ~0.1 GB),
#   SUPRA_CUDA_BUILD_DIR (build-cuda-check in the checkout), CUDACXX (nvcc), SUPRA_JOBS (nproc),
#   SUPRA_REQUIRE_CUDA_CHECK=1 (CI): a missing nvcc or an unreachable package index fails instead of skipping.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-python3}
TORCH_VERSION=2.14.1
# The wheels whose headers the build includes (torch 2.14.1's pins): nccl.h, and cuBLAS / cuSPARSE / cuSOLVER headers
# that ATen/cuda/CUDAContext.h includes (ProcessGroupNCCL.hpp includes it). cudnn, cufft, curand are not needed.
WHEELS=(torch==$TORCH_VERSION nvidia-nccl-cu13==2.30.7 nvidia-cublas==13.1.1.3 nvidia-cusparse==12.6.3.3
        nvidia-cusolver==12.0.4.66)
CACHE=${SUPRA_CUDA_CACHE:-$HOME/.cache/supra/torch-cuda-$TORCH_VERSION}
BUILD=${SUPRA_CUDA_BUILD_DIR:-$ROOT/build-cuda-check}
JOBS=${SUPRA_JOBS:-$(nproc)}
start=$(date +%s)

skip() {  # a reason not to run: a skip on a developer's machine, an error where the check is required
  if [ "${SUPRA_REQUIRE_CUDA_CHECK:-0}" = 1 ]; then echo "cuda_build_check: FAILED: $1" >&2; exit 1; fi
  echo "cuda_build_check: skipped: $1"; exit 0
}
[ "${SUPRA_SKIP_CUDA_CHECK:-0}" = 1 ] && { echo "cuda_build_check: skipped (SUPRA_SKIP_CUDA_CHECK=1)"; exit 0; }

# nvcc, and the toolkit it belongs to (nvcc may be a wrapper script elsewhere on PATH).
NVCC=${CUDACXX:-$(command -v nvcc || true)}
[ -n "$NVCC" ] && [ -x "$NVCC" ] || skip "no nvcc (put it on PATH or set CUDACXX)"
CUDA_ROOT=$("$NVCC" -v --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
CUDA_ROOT=$(cd "${CUDA_ROOT:-$(dirname "$NVCC")/..}" && pwd)

# 1. The headers + CMake config of the CUDA torch wheel and the NVIDIA header wheels, once. Only what compiling needs
#    is unpacked: include/ and share/cmake/ of torch, include/ of the others; torch's lib/*.so become empty placeholders
#    (CMake only checks that they exist; nothing is linked). The wheels themselves are deleted afterwards.
if [ ! -f "$CACHE/.complete" ]; then
  echo "cuda_build_check: fetching ${WHEELS[*]} into $CACHE"
  rm -rf "$CACHE.tmp" && mkdir -p "$CACHE.tmp/wheels"
  t0=$(date +%s)
  $PY -m pip download -q --no-deps --no-cache-dir -d "$CACHE.tmp/wheels" "${WHEELS[@]}" ||
    { rm -rf "$CACHE.tmp"; skip "pip could not download the CUDA wheels (${WHEELS[*]})"; }
  echo "cuda_build_check: downloaded $(du -sm "$CACHE.tmp/wheels" | cut -f1) MiB in $(( $(date +%s) - t0 )) s"
  $PY - "$CACHE.tmp" <<'PYEOF'
import glob, os, sys, zipfile
dest = os.path.join(sys.argv[1], "site")
for whl in sorted(glob.glob(os.path.join(sys.argv[1], "wheels", "*.whl"))):
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            name = info.filename
            if info.is_dir():
                continue
            if name.startswith(("torch/include/", "torch/share/cmake/")) or (name.startswith("nvidia/") and "/include/" in name):
                z.extract(info, dest)
            elif name.startswith("torch/lib/") and ".so" in name:
                path = os.path.join(dest, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "wb").close()
PYEOF
  rm -rf "$CACHE.tmp/wheels" "$CACHE"
  touch "$CACHE.tmp/.complete" && mv "$CACHE.tmp" "$CACHE"
  echo "cuda_build_check: cache ready ($(du -sm "$CACHE" | cut -f1) MiB)"
fi

# 2. Configure (cheap when nothing changed) and build only the check target.
mkdir -p "$BUILD"
stub_args=()  # libraries torch's CMake config insists on that a compiler-only toolkit lacks: empty placeholders
if ! ls "$CUDA_ROOT"/lib*/libnvrtc.so* >/dev/null 2>&1; then
  mkdir -p "$BUILD/stubs" && touch "$BUILD/stubs/libnvrtc.so" && stub_args+=(-DCUDA_nvrtc_LIBRARY="$BUILD/stubs/libnvrtc.so" -DCUDA_NVRTC_LIB="$BUILD/stubs/libnvrtc.so")
fi
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSUPRA_CUDA_BUILD_CHECK=ON \
  -DTorch_DIR="$CACHE/site/torch/share/cmake/Torch" -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" \
  -DCUDA_TOOLKIT_ROOT_DIR="$CUDA_ROOT" -DTORCH_CUDA_ARCH_LIST="8.0;9.0a" \
  -DPython3_EXECUTABLE="$(command -v "$PY")" "${stub_args[@]}" > "$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; echo "cuda_build_check: FAILED: configure" >&2; exit 1; }
if ! cmake --build "$BUILD" --target supra_cuda_build_check -j "$JOBS"; then
  echo "cuda_build_check: FAILED: a CUDA/NCCL-only source does not compile ($(( $(date +%s) - start )) s)" >&2
  exit 1
fi
echo "cuda_build_check: OK in $(( $(date +%s) - start )) s"
