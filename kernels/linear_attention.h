// The one entry point the model uses for SUPRA's decayed causal linear attention (see
// kernels/reference/linear_attention.h for the math and conventions). Dispatches on device: the CPU path is the
// differentiable chunked reference form; CUDA tensors go to the kernels of kernels/cuda (registered for the same
// operators, see kernels/ops.cpp), with autograd through their backward kernels.
#pragma once
#include "kernels/reference/linear_attention.h"

namespace supra::kernels {

using reference::LinearAttentionArgs;
using reference::LinearAttentionResult;

// Parallel (chunked) form: training and prefill. Differentiable.
LinearAttentionResult linear_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const LinearAttentionArgs& args, int64_t chunk_size);

// One recurrent decoding step (see reference::recurrent_step).
std::tuple<torch::Tensor, torch::Tensor> linear_attention_step(const torch::Tensor& q, const torch::Tensor& k,
                                                               const torch::Tensor& v, const torch::Tensor& state,
                                                               const torch::Tensor& log_gamma, double scale,
                                                               const torch::Tensor& reset = {});

// The same step in place: updates `state` (fp32 [B, H, Dk, Dv]) and returns o [B, H, Dv]. On CUDA a fused kernel
// with no allocation besides o and no host synchronisation (capturable in a CUDA graph; not differentiable).
torch::Tensor linear_attention_step_(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     torch::Tensor& state, const torch::Tensor& log_gamma, double scale,
                                     const torch::Tensor& reset = {});

}  // namespace supra::kernels
