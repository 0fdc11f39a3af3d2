// The operator boundary's conversions between "no tensor" spellings: op schemas say `Tensor?` (std::optional,
// nullopt = None), supra's C++ an undefined torch::Tensor. Used by kernels/ops.cpp, kernels/linear_attention.cpp and
// kernels/cuda/linear_attention_cuda.cpp, so an absent tensor means the same everywhere.
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

}  // namespace supra::kernels
