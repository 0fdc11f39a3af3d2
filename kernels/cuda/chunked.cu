// Public entry points of the chunked kernels: argument validation and the choice of implementation.
#include <cstdint>

#include "kernels/cuda/chunked_launch.h"
#include "kernels/cuda/linear_attention_kernels.h"

namespace supra::cuda {
namespace {

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

bool valid_common(const ChunkedArgs& a) {
  if (a.batch < 0 || a.seq_len < 1 || a.heads < 1 || a.kv_heads < 1 || a.heads % a.kv_heads != 0) return false;
  if (!chunked_supports_head_dim(a.head_dim, a.head_dim)) return false;
  if (a.batch * a.heads > INT32_MAX) return false;  // flattened grid.x
  if (a.q == nullptr || a.k == nullptr || a.v == nullptr || a.log_gamma == nullptr) return false;
  if (a.algo == Algo::kTensorCore && a.type != ElemType::kBFloat16) return false;
  // cp.async copies 16-byte pieces of rows: every row start is 16-byte aligned when the base is (D·2 or D·4 bytes
  // per row); the float2 / float4 state accesses need 8 / 16 bytes.
  return aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
}

bool use_tensor_cores(const ChunkedArgs& a) { return a.type == ElemType::kBFloat16 && a.algo != Algo::kSimt; }

}  // namespace

namespace detail {
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
  if (a.batch == 0) return cudaSuccess;
  return use_tensor_cores(a) ? detail::mma_backward(a, stream) : detail::simt_backward(a, stream);
}

}  // namespace supra::cuda
