// CUDA-core chunked kernels (fp32 arithmetic; fp32 or bf16 storage): __global__ wrappers and launchers. The
// algorithm is in chunked_simt.cuh.
#include "kernels/cuda/chunked_launch.h"
#include "kernels/cuda/chunked_simt.cuh"
#include "kernels/cuda/static_switch.h"

namespace supra::cuda::detail {
namespace {

// One CTA per (batch, head, segment).
template <typename T, int D, bool kGradQ, bool kStateOnly>
__global__ void __launch_bounds__(simt::kThreads, 1) simt_sweep_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  simt::sweep<T, D, kGradQ, kStateOnly>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <typename T, typename OutT, int D, bool kStateOnly>
__global__ void __launch_bounds__(simt::kThreads, 1) simt_reverse_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  simt::reverse<T, OutT, D, kStateOnly>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <typename T, int D, bool kGradQ, bool kStateOnly = false>
cudaError_t sweep_td(const ChunkedArgs& a, cudaStream_t stream) {
  return launch_per_head(simt_sweep_kernel<T, D, kGradQ, kStateOnly>, simt::kThreads, simt::smem_bytes<D>(3, 1), a,
                         stream);
}

template <typename T, typename OutT, int D, bool kStateOnly = false>
cudaError_t reverse_td(const ChunkedArgs& a, cudaStream_t stream) {
  return launch_per_head(simt_reverse_kernel<T, OutT, D, kStateOnly>, simt::kThreads, simt::smem_bytes<D>(4, 2), a,
                         stream);
}

// Sequence-parallel forward prologue (segments.cuh): each segment's local final state, then the scan to the state
// entering each segment (seg_states).
template <typename T, int D>
cudaError_t segment_states(const ChunkedArgs& a, cudaStream_t stream) {
  cudaError_t err = sweep_td<T, D, false, true>(a, stream);
  return err != cudaSuccess ? err : segment_scan(a, /*reverse=*/false, stream);
}

template <typename T, int D>
cudaError_t forward_td(const ChunkedArgs& a, cudaStream_t stream) {
  if (num_segments(a) > 1) {
    if (cudaError_t err = segment_states<T, D>(a, stream); err != cudaSuccess) return err;
  }
  return sweep_td<T, D, false>(a, stream);
}

template <typename T, int D>
cudaError_t backward_td(const ChunkedArgs& a, cudaStream_t stream) {
  const bool segmented = num_segments(a) > 1;
  cudaError_t err = segmented ? segment_states<T, D>(a, stream) : cudaSuccess;
  if (err == cudaSuccess) err = sweep_td<T, D, true>(a, stream);
  if (err == cudaSuccess && segmented) {  // each segment's local dS_0, then the reverse scan (seg_d_states)
    err = reverse_td<T, float, D, true>(a, stream);
    if (err == cudaSuccess) err = segment_scan(a, /*reverse=*/true, stream);
  }
  if (err != cudaSuccess) return err;
  return a.dkv_per_query_head ? reverse_td<T, float, D>(a, stream) : reverse_td<T, T, D>(a, stream);
}

}  // namespace

cudaError_t simt_forward(const ChunkedArgs& a, cudaStream_t stream) {
  return SUPRA_ELEM_TYPE_SWITCH(
      a.type, T, [&] { return SUPRA_HEAD_DIM_SWITCH(a.head_dim, kD, [&] { return forward_td<T, kD>(a, stream); }); });
}

cudaError_t simt_backward(const ChunkedArgs& a, cudaStream_t stream) {
  return SUPRA_ELEM_TYPE_SWITCH(
      a.type, T, [&] { return SUPRA_HEAD_DIM_SWITCH(a.head_dim, kD, [&] { return backward_td<T, kD>(a, stream); }); });
}

}  // namespace supra::cuda::detail
