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

// A SUPRA layer's whole decode step after its input projection, in place on `state` (fp32 [B, H, D, D]):
// pre [B, (H + 2·H_kv)·D] = the feature-map pre-activations of q and k, then v (one row per sequence); cos, sin
// [B, D] = the RoPE rows of each sequence's position. q = RoPE(ReLU(q_pre)), k = scale·RoPE(ReLU(k_pre)), one
// recurrent step (as linear_attention_step_), then GroupNorm per head (no affine, eps 1e-5). Returns [B, H·D] in
// pre's dtype. CPU: one fused pass (kernels/cpu/decode_step.cpp); CUDA: one fused kernel for bf16 / fp32 pre and
// D ∈ {64, 128} (kernels/cuda/decode_fused.cuh), else the composite; other devices: the composite of ATen ops and
// linear_attention_step_ (no host synchronisation: capturable in a CUDA graph). Not differentiable.
torch::Tensor supra_decode_step_(const torch::Tensor& pre, const torch::Tensor& cos, const torch::Tensor& sin,
                                 torch::Tensor& state, const torch::Tensor& log_gamma, double scale);
// The same step as ATen ops and linear_attention_step_ (fp32 arithmetic, any device): what the op runs where no
// fused kernel is registered (kernels/ops.cpp), callable directly to compare a fused kernel with.
torch::Tensor supra_decode_step_composite(const torch::Tensor& pre, const torch::Tensor& cos, const torch::Tensor& sin,
                                          torch::Tensor& state, const torch::Tensor& log_gamma, double scale);

}  // namespace supra::kernels
