// Tensor-core chunked kernels (bf16): __global__ wrappers and launchers. The algorithm is in chunked_mma.cuh.
#include "kernels/cuda/chunked_launch.h"
#include "kernels/cuda/chunked_mma.cuh"
#include "kernels/cuda/static_switch.h"

namespace supra::cuda::detail {
namespace {

using dev::bf16;

// One CTA per (batch, head, segment); 256 threads; up to 255 registers per thread (the fp32 state tile alone
// takes 64).
template <int D, bool kGradQ, bool kStateOnly>
__global__ void __launch_bounds__(mma::kThreads, 1) mma_sweep_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  mma::sweep<D, kGradQ, kStateOnly>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <int D, typename OutT, int STAGES, bool kStateOnly>
__global__ void __launch_bounds__(mma::kThreads, 1) mma_reverse_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  mma::reverse<D, OutT, STAGES, kStateOnly>(args, smem, static_cast<int>(threadIdx.x),
                                            static_cast<int64_t>(blockIdx.x));
}

template <int D, bool kGradQ, bool kStateOnly = false>
cudaError_t sweep_d(const ChunkedArgs& a, cudaStream_t stream) {
  return launch_per_head(mma_sweep_kernel<D, kGradQ, kStateOnly>, mma::kThreads, mma::smem_bytes<D>(3, 2), a, stream);
}

template <int D, typename OutT, bool kStateOnly = false>
cudaError_t reverse_d(const ChunkedArgs& a, cudaStream_t stream) {
  // Double-buffered when the device has the shared memory (H100: 227 KB per block), else single-buffered
  // (A100: 163 KB; D = 128 needs 175 KB double-buffered).
  constexpr int two = mma::smem_bytes<D>(4, 2), one = mma::smem_bytes<D>(4, 1);
  if (two <= max_dynamic_smem()) {
    return launch_per_head(mma_reverse_kernel<D, OutT, 2, kStateOnly>, mma::kThreads, two, a, stream);
  }
  return launch_per_head(mma_reverse_kernel<D, OutT, 1, kStateOnly>, mma::kThreads, one, a, stream);
}

// Sequence-parallel forward prologue (segments.cuh): each segment's local final state, then the scan to the state
// entering each segment (seg_states).
template <int D>
cudaError_t segment_states(const ChunkedArgs& a, cudaStream_t stream) {
  cudaError_t err = sweep_d<D, false, true>(a, stream);
  return err != cudaSuccess ? err : segment_scan(a, /*reverse=*/false, stream);
}

template <int D>
cudaError_t forward_d(const ChunkedArgs& a, cudaStream_t stream) {
  if (num_segments(a) > 1) {
    if (cudaError_t err = segment_states<D>(a, stream); err != cudaSuccess) return err;
  }
  return sweep_d<D, false>(a, stream);
}

template <int D>
cudaError_t backward_d(const ChunkedArgs& a, cudaStream_t stream) {
  const bool segmented = num_segments(a) > 1;
  cudaError_t err = segmented ? segment_states<D>(a, stream) : cudaSuccess;
  if (err == cudaSuccess) err = sweep_d<D, true>(a, stream);
  if (err == cudaSuccess && segmented) {  // each segment's local dS_0, then the reverse scan (seg_d_states)
    err = reverse_d<D, float, true>(a, stream);
    if (err == cudaSuccess) err = segment_scan(a, /*reverse=*/true, stream);
  }
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
