// The operator boundary's conversions between "no tensor" spellings: op schemas say `Tensor?` (std::optional,
// nullopt = None), supra's C++ an undefined torch::Tensor. Used by kernels/ops.cpp, kernels/linear_attention.cpp and
// kernels/cuda/linear_attention_cuda.cpp, so an absent tensor means the same everywhere. Also the shape checks of
// supra_decode_step_, shared by its CPU, CUDA and composite implementations.
#pragma once
#include <torch/torch.h>

#include <optional>

#include "kernels/reference/linear_attention.h"

namespace supra::kernels {

// An undefined tensor becomes nullopt.
inline std::optional<torch::Tensor> to_optional(const torch::Tensor& t) {
  return t.defined() ? std::optional<torch::Tensor>(t) : std::nullopt;
}

// nullopt (or an optional holding an undefined tensor) becomes an undefined tensor.
inline torch::Tensor from_optional(const std::optional<torch::Tensor>& t) {
  return t && t->defined() ? *t : torch::Tensor();
}

// The reference forms' arguments from an operator's (log_gamma, scale, initial_state?, resets?).
inline reference::LinearAttentionArgs reference_args(const torch::Tensor& log_gamma, double scale,
                                                     const std::optional<torch::Tensor>& initial_state,
                                                     const std::optional<torch::Tensor>& resets) {
  reference::LinearAttentionArgs a;
  a.log_gamma = log_gamma;
  a.scale = scale;
  a.initial_state = from_optional(initial_state);
  a.resets = from_optional(resets);
  return a;
}

// The sizes of a supra_decode_step_ call (kernels/linear_attention.h), checked: state [B, H, D, D] with D even,
// pre [B, (H + 2·H_kv)·D] with H a multiple of H_kv, cos and sin [B, D], log_gamma [H].
struct DecodeStepShape {
  int64_t B, H, Hkv, D;
};
inline DecodeStepShape decode_step_shape(const torch::Tensor& pre, const torch::Tensor& cos, const torch::Tensor& sin,
                                         const torch::Tensor& state, const torch::Tensor& log_gamma) {
  TORCH_CHECK(state.dim() == 4 && state.size(2) == state.size(3) && state.size(2) > 0 && state.size(2) % 2 == 0,
              "supra_decode_step_: state must be [B, H, D, D] with D even");
  const int64_t B = state.size(0), H = state.size(1), D = state.size(2);
  TORCH_CHECK(pre.dim() == 2 && pre.size(0) == B && pre.size(1) % D == 0 && pre.size(1) / D > H &&
                  (pre.size(1) / D - H) % 2 == 0,
              "supra_decode_step_: pre must be [B, (H + 2 H_kv) · D]");
  const int64_t Hkv = (pre.size(1) / D - H) / 2;
  TORCH_CHECK(H % Hkv == 0, "supra_decode_step_: H must be a multiple of H_kv");
  TORCH_CHECK(cos.sizes() == sin.sizes() && cos.dim() == 2 && cos.size(0) == B && cos.size(1) == D,
              "supra_decode_step_: cos and sin must be [B, D]");
  TORCH_CHECK(log_gamma.numel() == H, "supra_decode_step_: log_gamma must have H values");
  return {B, H, Hkv, D};
}

}  // namespace supra::kernels
