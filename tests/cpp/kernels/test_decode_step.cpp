// The fused CPU decode step (kernels/cpu/decode_step.cpp, op supra::supra_decode_step_) against an independent
// float64 computation of its definition (ReLU, RoPE, key scale, recurrent step, GroupNorm) and against the composite
// form other devices run; bf16 inputs; bad shapes refused.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/linear_attention.h"

namespace {

struct StepData {
  torch::Tensor pre, cos, sin, state, log_gamma;
};

StepData make(int64_t B, int64_t H, int64_t Hkv, int64_t D, uint64_t seed) {
  torch::manual_seed(seed);
  StepData d;
  d.pre = torch::randn({B, (H + 2 * Hkv) * D});
  auto angle = torch::rand({B, D}) * 6.3;
  d.cos = angle.cos(), d.sin = angle.sin();
  d.state = torch::randn({B, H, D, D}) * 0.1;
  d.log_gamma = -torch::rand({H}) * 0.5;
  return d;
}

// The definition, written out in float64: returns (GroupNorm'd output [B, H·D], next state).
std::pair<torch::Tensor, torch::Tensor> definition(const StepData& d, int64_t H, int64_t Hkv, int64_t D, double s) {
  const int64_t B = d.pre.size(0);
  auto x = d.pre.to(torch::kDouble).view({B, H + 2 * Hkv, D});
  auto c = d.cos.to(torch::kDouble).unsqueeze(1), sn = d.sin.to(torch::kDouble).unsqueeze(1);
  auto rope = [&](torch::Tensor t) {
    auto out = torch::empty_like(t);
    const int64_t half = D / 2;
    auto a = t.narrow(-1, 0, half), b = t.narrow(-1, half, half);
    out.narrow(-1, 0, half).copy_(a * c.narrow(-1, 0, half) - b * sn.narrow(-1, 0, half));
    out.narrow(-1, half, half).copy_(b * c.narrow(-1, half, half) + a * sn.narrow(-1, half, half));
    return out;
  };
  auto q = rope(x.narrow(1, 0, H).clamp_min(0));
  auto k = (rope(x.narrow(1, H, Hkv).clamp_min(0)) * s).repeat_interleave(H / Hkv, 1);
  auto v = x.narrow(1, H + Hkv, Hkv).repeat_interleave(H / Hkv, 1);
  auto S = d.state.to(torch::kDouble) + k.unsqueeze(-1) * v.unsqueeze(-2);  // S' [B, H, D, D]
  auto o = torch::einsum("bhi,bhij->bhj", {q, S});
  auto centred = o - o.mean(-1, true);
  auto out = centred / torch::sqrt(centred.pow(2).mean(-1, true) + 1e-5);
  auto gamma = d.log_gamma.to(torch::kDouble).exp().view({1, H, 1, 1});
  return {out.reshape({B, H * D}), gamma * S};
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST(DecodeStep, FusedCpuMatchesFloat64DefinitionAndComposite) {
  struct Shape {
    int64_t B, H, Hkv, D;
  };
  for (auto sh : {Shape{1, 4, 4, 8}, Shape{3, 4, 2, 8}, Shape{2, 9, 3, 64}, Shape{2, 8, 1, 128}}) {
    auto d = make(sh.B, sh.H, sh.Hkv, sh.D, 5);
    const double s = 1.0 / std::sqrt(static_cast<double>(sh.D));
    auto [want, want_state] = definition(d, sh.H, sh.Hkv, sh.D, s);
    auto fused_state = d.state.clone(), composite_state = d.state.clone();
    auto fused = supra::kernels::supra_decode_step_(d.pre, d.cos, d.sin, fused_state, d.log_gamma, s);
    auto composite = supra::kernels::supra_decode_step_composite(d.pre, d.cos, d.sin, composite_state, d.log_gamma, s);
    ASSERT_EQ(fused.sizes(), want.sizes());
    EXPECT_EQ(fused.scalar_type(), torch::kFloat);
    EXPECT_LT(max_abs(fused, want), 2e-4) << "B" << sh.B << " H" << sh.H << " Hkv" << sh.Hkv << " D" << sh.D;
    EXPECT_LT(max_abs(fused_state, want_state), 1e-5);
    EXPECT_LT(max_abs(composite, want), 2e-4);
    EXPECT_LT(max_abs(composite_state, want_state), 1e-5);
  }
}

TEST(DecodeStep, Bfloat16InputsComputeInFloat32) {
  auto d = make(2, 4, 2, 64, 9);
  d.pre = d.pre.to(torch::kBFloat16);
  auto [want, want_state] = definition(d, 4, 2, 64, 0.125);
  auto state = d.state.clone();
  auto out = supra::kernels::supra_decode_step_(d.pre, d.cos, d.sin, state, d.log_gamma, 0.125);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_LT(max_abs(out, want), 0.05);  // the output's bf16 rounding
  EXPECT_LT(max_abs(state, want_state), 1e-5);
}

TEST(DecodeStep, BadShapesAreRefused) {
  auto d = make(2, 4, 2, 8, 1);
  auto state = d.state.clone();
  EXPECT_THROW(supra::kernels::supra_decode_step_(d.pre.narrow(1, 0, 40), d.cos, d.sin, state, d.log_gamma, 1.0),
               c10::Error);
  EXPECT_THROW(supra::kernels::supra_decode_step_(d.pre, d.cos.narrow(1, 0, 4), d.sin, state, d.log_gamma, 1.0),
               c10::Error);
  auto f64 = state.to(torch::kDouble);
  EXPECT_THROW(supra::kernels::supra_decode_step_(d.pre, d.cos, d.sin, f64, d.log_gamma, 1.0), c10::Error);
}
