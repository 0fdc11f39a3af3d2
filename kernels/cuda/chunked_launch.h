// Internal: per-implementation launchers behind chunked_forward / chunked_backward (chunked.cu). Arguments are
// already validated.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/kernel_args.h"

namespace supra::cuda::detail {

cudaError_t mma_forward(const ChunkedArgs& args, cudaStream_t stream);
cudaError_t mma_backward(const ChunkedArgs& args, cudaStream_t stream);
cudaError_t simt_forward(const ChunkedArgs& args, cudaStream_t stream);
cudaError_t simt_backward(const ChunkedArgs& args, cudaStream_t stream);

// Largest dynamic shared memory a block may opt into on the current device (0 if it cannot be read).
int max_dynamic_smem();

// Runs the segment scan of the sequence-parallel mode (segments.cuh): forward (states) or reverse (gradients).
cudaError_t segment_scan(const ChunkedArgs& args, bool reverse, cudaStream_t stream);

// Raises the kernel's dynamic shared-memory limit, then launches one block of `threads` per (batch row, head,
// segment): B·H·nseg blocks (B·H without sequence parallelism).
template <typename Kernel>
cudaError_t launch_per_head(Kernel kernel, int threads, int smem, const ChunkedArgs& args, cudaStream_t stream) {
  if (smem > max_dynamic_smem()) return cudaErrorInvalidConfiguration;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(args.batch * args.heads * num_segments(args)));
  kernel<<<grid, threads, smem, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace supra::cuda::detail
