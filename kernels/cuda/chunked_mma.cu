// Tensor-core chunked kernels (bf16): __global__ wrappers and launchers. The algorithm is in chunked_mma.cuh.
#include "kernels/cuda/chunked_launch.h"
#include "kernels/cuda/chunked_mma.cuh"
#include "kernels/cuda/static_switch.h"

namespace supra::cuda::detail {
namespace {

using dev::bf16;

// One CTA per (batch, head); 256 threads; up to 255 registers per thread (the fp32 state tile alone takes 64).
template <int D, bool kGradQ>
__global__ void __launch_bounds__(mma::kThreads, 1) mma_sweep_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  mma::sweep<D, kGradQ>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <int D, typename OutT, int STAGES>
__global__ void __launch_bounds__(mma::kThreads, 1) mma_reverse_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  mma::reverse<D, OutT, STAGES>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <int D>
cudaError_t forward_d(const ChunkedArgs& a, cudaStream_t stream) {
  return launch_per_head(mma_sweep_kernel<D, false>, mma::kThreads, mma::smem_bytes<D>(3, 2), a, stream);
}

template <int D, typename OutT>
cudaError_t reverse_d(const ChunkedArgs& a, cudaStream_t stream) {
  // Double-buffered when the device has the shared memory (H100: 227 KB per block), else single-buffered
  // (A100: 163 KB; D = 128 needs 175 KB double-buffered).
  constexpr int two = mma::smem_bytes<D>(4, 2), one = mma::smem_bytes<D>(4, 1);
  if (two <= max_dynamic_smem()) return launch_per_head(mma_reverse_kernel<D, OutT, 2>, mma::kThreads, two, a, stream);
  return launch_per_head(mma_reverse_kernel<D, OutT, 1>, mma::kThreads, one, a, stream);
}

template <int D>
cudaError_t backward_d(const ChunkedArgs& a, cudaStream_t stream) {
  cudaError_t err = launch_per_head(mma_sweep_kernel<D, true>, mma::kThreads, mma::smem_bytes<D>(3, 2), a, stream);
  if (err != cudaSuccess) return err;
  return a.dkv_per_query_head ? reverse_d<D, float>(a, stream) : reverse_d<D, bf16>(a, stream);
}

}  // namespace

cudaError_t mma_forward(const ChunkedArgs& a, cudaStream_t stream) {
  return SUPRA_HEAD_DIM_SWITCH(a.head_dim, kD, [&] { return forward_d<kD>(a, stream); });
}

cudaError_t mma_backward(const ChunkedArgs& a, cudaStream_t stream) {
  return SUPRA_HEAD_DIM_SWITCH(a.head_dim, kD, [&] { return backward_d<kD>(a, stream); });
}

}  // namespace supra::cuda::detail
