// Host API of supra's CUDA linear-attention kernels (launchers). Plain C++ plus the CUDA runtime types, no
// LibTorch: the kernels compile with nvcc on any host, and the LibTorch glue (kernels/cuda/linear_attention_cuda.cpp)
// only fills the argument structs of kernel_args.h from tensors. The algorithms are described in chunked_mma.cuh,
// chunked_simt.cuh, decode_step.cuh, decode_fused.cuh and docs/kernels.md.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/kernel_args.h"

namespace supra::cuda {

// Forward: o and (if final_state) the final state. Returns the launch status (cudaErrorInvalidValue for
// unsupported shapes, cudaErrorInvalidConfiguration when the device lacks the shared memory).
cudaError_t chunked_forward(const ChunkedArgs& args, cudaStream_t stream);

// Backward: dq, dk, dv and (if d_initial_state) the initial-state gradient, from d_o and d_final_state.
// Recomputes everything from q, k, v (nothing is saved by the forward besides its inputs).
cudaError_t chunked_backward(const ChunkedArgs& args, cudaStream_t stream);

// True when the kernels support this head dim (64 or 128, D_k == D_v).
inline bool chunked_supports_head_dim(int64_t dk, int64_t dv) { return dk == dv && (dk == 64 || dk == 128); }

// No allocation, no host synchronisation: safe to capture in a CUDA graph.
cudaError_t decode_step(const DecodeArgs& args, cudaStream_t stream);

// The fused SUPRA decode step (φ, RoPE, key scale, state update, readout, GroupNorm; decode_fused.cuh), one CTA per
// (batch, head). D ∈ {64, 128}. No allocation, no host synchronisation: safe to capture in a CUDA graph.
cudaError_t decode_fused_step(const DecodeFusedArgs& args, cudaStream_t stream);

}  // namespace supra::cuda
