#!/usr/bin/env bash
# Builds and runs the host emulation of the CUDA kernel bodies (no GPU needed): float64 checks of the forward,
# final state, gradients, decode step and fused SUPRA decode step, for the tensor-core and CUDA-core paths. Usage:
#   kernels/cuda/emu/run.sh [quick|decode|fused|segments]
# (SUPRA_EMU_EAGER_COPIES=1 lands cp.async copies at issue instead)
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${TMPDIR:-/tmp}/supra_emulate_kernels
g++ -std=c++20 -O2 -DSUPRA_EMULATE -I. -pthread -Wall -Wextra -Wno-unknown-pragmas -o "$out" kernels/cuda/emu/emulate_kernels.cpp
"$out" "$@"
