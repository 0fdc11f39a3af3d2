// Registers supra's linear-attention functions as LibTorch operators (namespace `supra`), so that C++ and
// Python (torch.ops.load_library("libsupra_kernels.so"); torch.ops.supra.linear_attention(...)) call one op
// and the dispatcher picks the implementation. The CPU forms are composite (autograd through their ATen ops).
// linear_attention_step_ is the in-place decoding step (the state is updated, o returned; not differentiable on
// CUDA), the op to use in a decode loop / CUDA graph.
#include <torch/library.h>

#include "kernels/linear_attention.h"
#include "kernels/op_args.h"
#include "kernels/reference/linear_attention.h"

namespace supra::kernels {
namespace {

std::tuple<torch::Tensor, torch::Tensor> chunked_op(const torch::Tensor& q, const torch::Tensor& k,
                                                    const torch::Tensor& v, const torch::Tensor& log_gamma,
                                                    double scale, const std::optional<torch::Tensor>& initial_state,
                                                    const std::optional<torch::Tensor>& resets, int64_t chunk_size) {
  return reference::chunked(q, k, v, reference_args(log_gamma, scale, initial_state, resets), chunk_size);
}

std::tuple<torch::Tensor, torch::Tensor> naive_op(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, const torch::Tensor& log_gamma, double scale,
                                                  const std::optional<torch::Tensor>& initial_state,
                                                  const std::optional<torch::Tensor>& resets) {
  return reference::naive(q, k, v, reference_args(log_gamma, scale, initial_state, resets));
}

std::tuple<torch::Tensor, torch::Tensor> recurrent_op(const torch::Tensor& q, const torch::Tensor& k,
                                                      const torch::Tensor& v, const torch::Tensor& log_gamma,
                                                      double scale, const std::optional<torch::Tensor>& initial_state,
                                                      const std::optional<torch::Tensor>& resets) {
  return reference::recurrent(q, k, v, reference_args(log_gamma, scale, initial_state, resets));
}

std::tuple<torch::Tensor, torch::Tensor> step_op(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                 const torch::Tensor& state, const torch::Tensor& log_gamma,
                                                 double scale, const std::optional<torch::Tensor>& reset) {
  return reference::recurrent_step(q, k, v, state, log_gamma, scale, from_optional(reset));
}

// In-place decoding step: updates `state` and returns o. Composite (the reference step, then copy_) for every
// device without its own kernel; CUDA registers the fused kernel (kernels/cuda/linear_attention_cuda.cpp).
torch::Tensor step_inplace_op(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              torch::Tensor& state, const torch::Tensor& log_gamma, double scale,
                              const std::optional<torch::Tensor>& reset) {
  auto [o, next] = reference::recurrent_step(q, k, v, state, log_gamma, scale, from_optional(reset));
  state.copy_(next);
  return o;
}

}  // namespace

torch::Tensor supra_decode_step_composite(const torch::Tensor& pre, const torch::Tensor& cos, const torch::Tensor& sin,
                                          torch::Tensor& state, const torch::Tensor& log_gamma, double scale) {
  const DecodeStepShape shape = decode_step_shape(pre, cos, sin, state, log_gamma);
  const int64_t B = shape.B, H = shape.H, Hkv = shape.Hkv, D = shape.D;
  auto x = pre.to(torch::kFloat).view({B, H + 2 * Hkv, D});
  auto c = cos.to(torch::kFloat).unsqueeze(1), s = sin.to(torch::kFloat).unsqueeze(1);
  auto rope = [&](const torch::Tensor& t) {  // x·cos + rotate_half(x)·sin
    auto rotated = torch::cat({-t.narrow(-1, D / 2, D / 2), t.narrow(-1, 0, D / 2)}, -1);
    return t * c + rotated * s;
  };
  auto q = rope(torch::relu(x.narrow(1, 0, H))).contiguous();
  auto k = rope(torch::relu(x.narrow(1, H, Hkv))).contiguous();
  auto v = x.narrow(1, H + Hkv, Hkv).contiguous();
  static auto step =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("supra::linear_attention_step_", "")
          .typed<torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, torch::Tensor&,
                               const torch::Tensor&, double, const std::optional<torch::Tensor>&)>();
  auto o = step.call(q, k, v, state, log_gamma, scale, std::nullopt).to(torch::kFloat);
  auto mean = o.mean(-1, /*keepdim=*/true);
  auto centred = o - mean;
  auto var = centred.pow(2).mean(-1, /*keepdim=*/true);
  return (centred * torch::rsqrt(var + 1e-5)).to(pre.scalar_type()).view({B, H * D});
}

TORCH_LIBRARY(supra, m) {
  m.def(
      "linear_attention(Tensor q, Tensor k, Tensor v, Tensor log_gamma, float scale, Tensor? initial_state=None, "
      "Tensor? resets=None, int chunk_size=64) -> (Tensor, Tensor)");
  m.def(
      "linear_attention_naive(Tensor q, Tensor k, Tensor v, Tensor log_gamma, float scale, "
      "Tensor? initial_state=None, Tensor? resets=None) -> (Tensor, Tensor)");
  m.def(
      "linear_attention_recurrent(Tensor q, Tensor k, Tensor v, Tensor log_gamma, float scale, "
      "Tensor? initial_state=None, Tensor? resets=None) -> (Tensor, Tensor)");
  m.def(
      "linear_attention_step(Tensor q, Tensor k, Tensor v, Tensor state, Tensor log_gamma, float scale, "
      "Tensor? reset=None) -> (Tensor, Tensor)");
  m.def(
      "linear_attention_step_(Tensor q, Tensor k, Tensor v, Tensor(a!) state, Tensor log_gamma, float scale, "
      "Tensor? reset=None) -> Tensor");
  m.def(
      "supra_decode_step_(Tensor pre, Tensor cos, Tensor sin, Tensor(a!) state, Tensor log_gamma, float scale) -> "
      "Tensor");
}

TORCH_LIBRARY_IMPL(supra, CompositeImplicitAutograd, m) {
  m.impl("linear_attention", &chunked_op);
  m.impl("linear_attention_naive", &naive_op);
  m.impl("linear_attention_recurrent", &recurrent_op);
  m.impl("linear_attention_step", &step_op);
  m.impl("linear_attention_step_", &step_inplace_op);
}

// A backend kernel registered for the same op (CPU: kernels/cpu/decode_step.cpp; CUDA: kernels/cuda/decode_fused.cuh
// via linear_attention_cuda.cpp) takes precedence over this one.
TORCH_LIBRARY_IMPL(supra, CompositeExplicitAutograd, m) { m.impl("supra_decode_step_", &supra_decode_step_composite); }
// CUDA tensors: kernels/cuda/linear_attention_cuda.cpp (built when LibTorch has CUDA) registers the CUDA kernels for
// linear_attention (CUDA and AutogradCUDA keys, the latter a torch::autograd::Function whose backward runs the
// backward kernels) and for linear_attention_step_. Without those registrations CUDA tensors take the composite
// reference forms above.

}  // namespace supra::kernels
