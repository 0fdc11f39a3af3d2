// The fused decode step of a SUPRA layer on the CPU (op `supra::supra_decode_step_`, CPU key): for one token per
// sequence it goes from the feature-map pre-activations to the GroupNorm'd head outputs in one pass over each
// (sequence, head) state, with no intermediate tensors. Per (b, h), kv head g = h / (H / H_kv), d = D:
//     q = RoPE(ReLU(q_pre)),  k = s · RoPE(ReLU(k_pre))          RoPE: x·cos + rotate_half(x)·sin (rotate-half)
//     S' = S + kᵀ v;  o = q S';  S ← γ_h S'                       (the stored state carries the next step's decay)
//     out = (o − mean(o)) / √(var(o) + 1e-5)                      (GroupNorm with H groups, no affine, biased var)
// All arithmetic in fp32 whatever the input dtype. The composite form (kernels/ops.cpp) defines the same function
// with ATen ops and is what other devices run.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "kernels/op_args.h"

namespace supra::kernels {
namespace {

// dst = RoPE(ReLU(src)) · mul for one head of D values.
template <typename T>
void feature_rope(float* __restrict dst, const T* __restrict src, const float* __restrict cos,
                  const float* __restrict sin, int64_t D, float mul) {
  const int64_t half = D / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float a = std::max(static_cast<float>(src[i]), 0.f), b = std::max(static_cast<float>(src[i + half]), 0.f);
    dst[i] = (a * cos[i] + -b * sin[i]) * mul;
    dst[i + half] = (b * cos[i + half] + a * sin[i + half]) * mul;
  }
}

// S' = S + kᵀv, o = q S', S ← γ S' for one head's D×D row-major state; the rows are streamed once. The inner loop
// vectorises (this file is built with -O3, CMakeLists.txt), with an AVX2 clone picked at load time where the CPU has
// it.
__attribute__((target_clones("avx2", "default"))) void state_step(float* __restrict S, float* __restrict o,
                                                                  const float* __restrict q, const float* __restrict k,
                                                                  const float* __restrict v, int64_t D, float gamma) {
  for (int64_t j = 0; j < D; ++j) o[j] = 0.f;
  for (int64_t i = 0; i < D; ++i) {
    float* __restrict row = S + i * D;
    const float ki = k[i], qi = q[i];
    for (int64_t j = 0; j < D; ++j) {
      const float sp = row[j] + ki * v[j];
      o[j] += qi * sp;
      row[j] = gamma * sp;
    }
  }
}

template <typename T>
void decode_step_cpu(const T* pre, const float* cos, const float* sin, float* state, const float* log_gamma, T* out,
                     int64_t B, int64_t H, int64_t Hkv, int64_t D, float scale) {
  const int64_t row = (H + 2 * Hkv) * D, group = H / Hkv;
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(4 * D);
    float *q = buf.data(), *k = q + D, *v = k + D, *o = v + D;
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / H, h = bh % H, g = h / group;
      const T* p = pre + b * row;
      feature_rope(q, p + h * D, cos + b * D, sin + b * D, D, 1.f);
      feature_rope(k, p + (H + g) * D, cos + b * D, sin + b * D, D, scale);
      const T* pv = p + (H + Hkv + g) * D;
      for (int64_t j = 0; j < D; ++j) v[j] = static_cast<float>(pv[j]);
      state_step(state + bh * D * D, o, q, k, v, D, std::exp(log_gamma[h]));
      float mean = 0.f, var = 0.f;
      for (int64_t j = 0; j < D; ++j) mean += o[j];
      mean /= static_cast<float>(D);
      for (int64_t j = 0; j < D; ++j) var += (o[j] - mean) * (o[j] - mean);
      const float inv = 1.f / std::sqrt(var / static_cast<float>(D) + 1e-5f);
      T* dst = out + b * H * D + h * D;
      for (int64_t j = 0; j < D; ++j) dst[j] = static_cast<T>((o[j] - mean) * inv);
    }
  });
}

torch::Tensor supra_decode_step_cpu(const torch::Tensor& pre, const torch::Tensor& cos, const torch::Tensor& sin,
                                    torch::Tensor& state, const torch::Tensor& log_gamma, double scale) {
  TORCH_CHECK(state.dim() == 4 && state.scalar_type() == torch::kFloat && state.is_contiguous(),
              "supra_decode_step_: state must be a contiguous fp32 [B, H, D, D]");
  const DecodeStepShape shape = decode_step_shape(pre, cos, sin, state, log_gamma);
  const int64_t B = shape.B, H = shape.H, Hkv = shape.Hkv, D = shape.D;
  auto p = pre.contiguous();
  auto c = cos.to(torch::kFloat).contiguous(), s = sin.to(torch::kFloat).contiguous();
  auto lg = log_gamma.to(torch::kFloat).contiguous();
  auto out = torch::empty({B, H * D}, pre.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, pre.scalar_type(), "supra_decode_step_", [&] {
    decode_step_cpu<scalar_t>(p.data_ptr<scalar_t>(), c.data_ptr<float>(), s.data_ptr<float>(), state.data_ptr<float>(),
                              lg.data_ptr<float>(), out.data_ptr<scalar_t>(), B, H, Hkv, D, static_cast<float>(scale));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(supra, CPU, m) { m.impl("supra_decode_step_", &supra_decode_step_cpu); }

}  // namespace supra::kernels
