// Fused SUPRA decode step: __global__ wrapper and launcher (algorithm in decode_fused.cuh). No allocation and no
// host synchronisation, so it can be captured in a CUDA graph.
#include <cstdint>

#include "kernels/cuda/decode_fused.cuh"
#include "kernels/cuda/linear_attention_kernels.h"
#include "kernels/cuda/static_switch.h"

namespace supra::cuda {
namespace {

// At least 2 CTAs per SM (≤ 128 registers a thread for D = 128; ptxas uses ~110, no spills): batch 8, H 32 is then
// one wave of 256 CTAs on an H100's 132 SMs.
template <typename T, int D>
__global__ void __launch_bounds__(decode_fused::kThreads<D>, 2) decode_fused_kernel(const DecodeFusedArgs args) {
  __shared__ __align__(16) float smem[decode_fused::Smem<D>::kFloats];
  decode_fused::step<T, D>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <typename T, int D>
cudaError_t launch_d(const DecodeFusedArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.batch * a.heads));  // batch folded in: block = b·H + h
  decode_fused_kernel<T, D><<<grid, decode_fused::kThreads<D>, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t decode_fused_step(const DecodeFusedArgs& a, cudaStream_t stream) {
  if (a.batch < 0 || a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0) return cudaErrorInvalidValue;
  if (!chunked_supports_head_dim(a.head_dim, a.head_dim)) return cudaErrorInvalidValue;
  if (a.batch * a.heads > INT32_MAX) return cudaErrorInvalidValue;  // flattened grid.x
  if (a.pre == nullptr || a.cos == nullptr || a.sin == nullptr || a.out == nullptr || a.state == nullptr ||
      a.log_gamma == nullptr || (reinterpret_cast<std::uintptr_t>(a.state) & 15u) != 0)
    return cudaErrorInvalidValue;
  if (a.batch == 0) return cudaSuccess;
  return SUPRA_ELEM_TYPE_SWITCH(
      a.type, T, [&] { return SUPRA_HEAD_DIM_SWITCH(a.head_dim, kD, [&] { return launch_d<T, kD>(a, stream); }); });
}

}  // namespace supra::cuda
