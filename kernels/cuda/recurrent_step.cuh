// Launcher for the SUPRA recurrent decode step (plain CUDA, no LibTorch types, so it compiles on any host with
// nvcc). One token per sequence:  S' = S + s·kᵀv,  o = q·S',  S ← γ_h·S'  (state stored with the next decay).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace supra::cuda {

enum class ElemType { kFloat32, kBFloat16 };

// q, k: [B, H, Dk]; v, o: [B, H, Dv] (contiguous, ElemType); state: [B, H, Dk, Dv] fp32, updated in place;
// log_gamma: [H] fp32 natural-log decay. Returns the launch error (cudaSuccess when queued).
cudaError_t recurrent_step(const void* q, const void* k, const void* v, void* o, float* state,
                           const float* log_gamma, int64_t batch, int64_t heads, int64_t dk, int64_t dv, float scale,
                           ElemType type, cudaStream_t stream);

}  // namespace supra::cuda
