#include "kernels/linear_attention.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include "kernels/op_args.h"

namespace supra::kernels {

// Both entry points go through the registered operators (kernels/ops.cpp), so a device-specific
// implementation registered for the same op is picked up without touching the model code.

LinearAttentionResult linear_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const LinearAttentionArgs& args, int64_t chunk_size) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("supra::linear_attention", "")
          .typed<std::tuple<torch::Tensor, torch::Tensor>(
              const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, double,
              const std::optional<torch::Tensor>&, const std::optional<torch::Tensor>&, int64_t)>();
  return op.call(q, k, v, args.log_gamma, args.scale, to_optional(args.initial_state), to_optional(args.resets),
                 chunk_size);
}

std::tuple<torch::Tensor, torch::Tensor> linear_attention_step(const torch::Tensor& q, const torch::Tensor& k,
                                                               const torch::Tensor& v, const torch::Tensor& state,
                                                               const torch::Tensor& log_gamma, double scale,
                                                               const torch::Tensor& reset) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("supra::linear_attention_step", "")
                       .typed<std::tuple<torch::Tensor, torch::Tensor>(
                           const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                           const torch::Tensor&, double, const std::optional<torch::Tensor>&)>();
  return op.call(q, k, v, state, log_gamma, scale, to_optional(reset));
}

torch::Tensor linear_attention_step_(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     torch::Tensor& state, const torch::Tensor& log_gamma, double scale,
                                     const torch::Tensor& reset) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("supra::linear_attention_step_", "")
          .typed<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, torch::Tensor&,
                               const torch::Tensor&, double, const std::optional<torch::Tensor>&)>();
  return op.call(q, k, v, state, log_gamma, scale, to_optional(reset));
}

torch::Tensor supra_decode_step_(const torch::Tensor& pre, const torch::Tensor& cos, const torch::Tensor& sin,
                                 torch::Tensor& state, const torch::Tensor& log_gamma, double scale) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("supra::supra_decode_step_", "")
                       .typed<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                            torch::Tensor&, const torch::Tensor&, double)>();
  return op.call(pre, cos, sin, state, log_gamma, scale);
}

}  // namespace supra::kernels
