// The one entry point the model uses for SUPRA's decayed causal linear attention (see
// kernels/reference/linear_attention.h for the math and conventions). Dispatches on device: the CPU path is the
// differentiable chunked reference form; CUDA kernels plug in here.
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

}  // namespace supra::kernels
