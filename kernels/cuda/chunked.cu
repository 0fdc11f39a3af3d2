// Public entry points of the chunked kernels: argument validation and the choice of implementation; the segment
// scan kernel of the sequence-parallel mode (segments.cuh), shared by both implementations.
#include <cstdint>

#include "kernels/cuda/chunked_launch.h"
#include "kernels/cuda/linear_attention_kernels.h"
#include "kernels/cuda/segments.cuh"
#include "kernels/cuda/static_switch.h"

namespace supra::cuda {
namespace {

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

bool valid_common(const ChunkedArgs& a) {
  if (a.batch < 0 || a.seq_len < 1 || a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0) return false;
  if (!chunked_supports_head_dim(a.head_dim, a.head_dim)) return false;
  const int64_t nseg = num_segments(a);
  if (a.batch * a.heads * nseg > INT32_MAX) return false;  // flattened grid.x
  // Sequence parallelism: whole chunks per segment (64 = the tensor-core chunk, a multiple of the CUDA-core one),
  // and the workspace of the states entering the segments.
  if (nseg > 1 && (a.segment_len % 64 != 0 || a.seg_states == nullptr)) return false;
  if (a.q == nullptr || a.k == nullptr || a.v == nullptr || a.log_gamma == nullptr) return false;
  if (a.algo == Algo::kTensorCore && a.type != ElemType::kBFloat16) return false;
  // cp.async copies 16-byte pieces of rows: every row start is 16-byte aligned when the base is (D·2 or D·4 bytes
  // per row); the float2 / float4 state accesses need 8 / 16 bytes.
  return aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
}

bool use_tensor_cores(const ChunkedArgs& a) { return a.type == ElemType::kBFloat16 && a.algo != Algo::kSimt; }

}  // namespace

namespace detail {
namespace {
template <int D, bool kReverse>
__global__ void __launch_bounds__(segments::kThreads) segment_scan_kernel(const ChunkedArgs args) {
  extern __shared__ __align__(16) char smem[];
  segments::scan<D, kReverse>(args, smem, static_cast<int>(threadIdx.x), static_cast<int64_t>(blockIdx.x));
}

template <int D>
cudaError_t segment_scan_d(const ChunkedArgs& a, bool reverse, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.batch * a.heads * segments::kSlices<D>));
  if (reverse) {
    segment_scan_kernel<D, true><<<grid, segments::kThreads, segments::smem_bytes(), stream>>>(a);
  } else {
    segment_scan_kernel<D, false><<<grid, segments::kThreads, segments::smem_bytes(), stream>>>(a);
  }
  return cudaGetLastError();
}
}  // namespace

cudaError_t segment_scan(const ChunkedArgs& a, bool reverse, cudaStream_t stream) {
  return SUPRA_HEAD_DIM_SWITCH(a.head_dim, kD, [&] { return segment_scan_d<kD>(a, reverse, stream); });
}

int max_dynamic_smem() {
  int device = 0, bytes = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) return 0;
  return bytes;
}
}  // namespace detail

cudaError_t chunked_forward(const ChunkedArgs& a, cudaStream_t stream) {
  if (!valid_common(a) || a.o == nullptr) return cudaErrorInvalidValue;
  if (a.batch == 0) return cudaSuccess;
  return use_tensor_cores(a) ? detail::mma_forward(a, stream) : detail::simt_forward(a, stream);
}

cudaError_t chunked_backward(const ChunkedArgs& a, cudaStream_t stream) {
  if (!valid_common(a) || a.d_o == nullptr || !aligned16(a.d_o)) return cudaErrorInvalidValue;
  if (a.dq == nullptr || a.dk == nullptr || a.dv == nullptr) return cudaErrorInvalidValue;
  if (!a.dkv_per_query_head && a.heads != a.kv_heads) return cudaErrorInvalidValue;  // would race across heads
  if (num_segments(a) > 1 && a.seg_d_states == nullptr) return cudaErrorInvalidValue;
  if (a.batch == 0) return cudaSuccess;
  return use_tensor_cores(a) ? detail::mma_backward(a, stream) : detail::simt_backward(a, stream);
}

}  // namespace supra::cuda
