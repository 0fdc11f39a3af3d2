#include "kernels/linear_attention.h"

namespace supra::kernels {

LinearAttentionResult linear_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const LinearAttentionArgs& args, int64_t chunk_size) {
  return reference::chunked(q, k, v, args, chunk_size);
}

std::tuple<torch::Tensor, torch::Tensor> linear_attention_step(const torch::Tensor& q, const torch::Tensor& k,
                                                               const torch::Tensor& v, const torch::Tensor& state,
                                                               const torch::Tensor& log_gamma, double scale,
                                                               const torch::Tensor& reset) {
  return reference::recurrent_step(q, k, v, state, log_gamma, scale, reset);
}

}  // namespace supra::kernels
