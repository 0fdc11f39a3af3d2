// CUDA-core chunked kernels (fp32 arithmetic; fp32 or bf16 storage): __global__ wrappers and launchers. The
// algorithm is in chunked_simt.cuh.
#include "kernels/cuda/chunked_launch.h"
#include "kernels/cuda/chunked_simt.cuh"
#include "kernels/cuda/static_switch.h"

namespace supra::cuda::detail {
namespace {

template <typename T, int D, bool kGradQ>
__global__ void __launch_bounds__(simt::kThreads, 1) simt_sweep_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  simt::sweep<T, D, kGradQ>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <typename T, typename OutT, int D>
__global__ void __launch_bounds__(simt::kThreads, 1) simt_reverse_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  simt::reverse<T, OutT, D>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <typename T, int D>
cudaError_t forward_td(const ChunkedArgs& a, cudaStream_t stream) {
  return launch_per_head(simt_sweep_kernel<T, D, false>, simt::kThreads, simt::smem_bytes<D>(3, 1), a, stream);
}

template <typename T, int D>
cudaError_t backward_td(const ChunkedArgs& a, cudaStream_t stream) {
  cudaError_t err =
      launch_per_head(simt_sweep_kernel<T, D, true>, simt::kThreads, simt::smem_bytes<D>(3, 1), a, stream);
  if (err != cudaSuccess) return err;
  constexpr int smem = simt::smem_bytes<D>(4, 2);
  if (a.dkv_per_query_head) return launch_per_head(simt_reverse_kernel<T, float, D>, simt::kThreads, smem, a, stream);
  return launch_per_head(simt_reverse_kernel<T, T, D>, simt::kThreads, smem, a, stream);
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
