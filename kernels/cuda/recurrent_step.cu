// SUPRA recurrent decode step. Grid: one block per (batch, head) on a flattened x-dimension; each thread owns one
// value column j of the fp32 state and walks the Dk rows, so the state is read and written exactly once, coalesced:
//   S'[i][j] = S[i][j] + s·k[i]·v[j]
//   o[j]     = Σ_i q[i]·S'[i][j]
//   S[i][j]  = γ·S'[i][j]
// q and k are staged in shared memory (fp32) because every thread reads all of them.
#include <cuda_bf16.h>

#include "kernels/cuda/recurrent_step.cuh"

namespace supra::cuda {
namespace {

template <typename T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

template <typename T>
__global__ void recurrent_step_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                      T* __restrict__ o, float* __restrict__ state,
                                      const float* __restrict__ log_gamma, int heads, int dk, int dv, float scale) {
  extern __shared__ float smem[];  // q[dk], k[dk]
  float* sq = smem;
  float* sk = smem + dk;
  const int64_t bh = blockIdx.x;  // flattened (batch, head)
  const int h = static_cast<int>(bh % heads);
  for (int i = threadIdx.x; i < dk; i += blockDim.x) {
    sq[i] = to_float(q[bh * dk + i]);
    sk[i] = to_float(k[bh * dk + i]) * scale;
  }
  __syncthreads();
  const float gamma = __expf(log_gamma[h]);
  float* S = state + bh * static_cast<int64_t>(dk) * dv;
  for (int j = threadIdx.x; j < dv; j += blockDim.x) {
    const float vj = to_float(v[bh * dv + j]);
    float acc = 0.f;
    for (int i = 0; i < dk; ++i) {
      const float s = S[i * dv + j] + sk[i] * vj;
      acc += sq[i] * s;
      S[i * dv + j] = gamma * s;
    }
    o[bh * dv + j] = from_float<T>(acc);
  }
}

}  // namespace

cudaError_t recurrent_step(const void* q, const void* k, const void* v, void* o, float* state,
                           const float* log_gamma, int64_t batch, int64_t heads, int64_t dk, int64_t dv, float scale,
                           ElemType type, cudaStream_t stream) {
  if (batch * heads == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(batch * heads));
  const dim3 block(static_cast<unsigned>(dv < 128 ? ((dv + 31) / 32) * 32 : 128));
  const size_t smem = 2 * dk * sizeof(float);
  if (type == ElemType::kFloat32) {
    recurrent_step_kernel<float><<<grid, block, smem, stream>>>(
        static_cast<const float*>(q), static_cast<const float*>(k), static_cast<const float*>(v),
        static_cast<float*>(o), state, log_gamma, static_cast<int>(heads), static_cast<int>(dk),
        static_cast<int>(dv), scale);
  } else {
    recurrent_step_kernel<__nv_bfloat16><<<grid, block, smem, stream>>>(
        static_cast<const __nv_bfloat16*>(q), static_cast<const __nv_bfloat16*>(k),
        static_cast<const __nv_bfloat16*>(v), static_cast<__nv_bfloat16*>(o), state, log_gamma,
        static_cast<int>(heads), static_cast<int>(dk), static_cast<int>(dv), scale);
  }
  return cudaGetLastError();
}

}  // namespace supra::cuda
