#include "core/model/layers.h"

#include <cmath>

namespace supra {

namespace F = torch::nn::functional;

DenseImpl::DenseImpl(int64_t in_features, int64_t out_features, bool has_bias) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  if (has_bias) bias = register_parameter("bias", torch::empty({out_features}));
}

torch::Tensor DenseImpl::forward(const torch::Tensor& x) { return torch::linear(x, weight, bias); }

void DenseImpl::reset_like_torch_linear(torch::Generator gen) {
  // nn.Linear.reset_parameters: kaiming_uniform_(a=√5) on the weight is U(±1/√fan_in); the bias is U(±1/√fan_in).
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
  weight.uniform_(-bound, bound, gen);
  if (bias.defined()) bias.uniform_(-bound, bound, gen);
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim) {
  weight = register_parameter("weight", torch::empty({vocab, dim}));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto h = x.to(torch::kFloat);
  auto variance = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * torch::rsqrt(variance + eps);
  return weight * h.to(x.scalar_type());
}

MLPImpl::MLPImpl(int64_t hidden, int64_t intermediate) {
  gate_proj = register_module("gate_proj", Dense(hidden, intermediate));
  up_proj = register_module("up_proj", Dense(hidden, intermediate));
  down_proj = register_module("down_proj", Dense(intermediate, hidden));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }

}  // namespace supra
