// The three forms of SUPRA's linear attention (naive, chunked, recurrent) are one function: float64 agreement over
// lengths, head counts, GQA, initial states and document resets; chunked gradients equal the naive ones; a chunked
// prefill hands its state to the recurrent decoder; nothing crosses a document boundary.
#include <gtest/gtest.h>

#include "core/supra/decay.h"
#include "kernels/linear_attention.h"
#include "kernels/reference/linear_attention.h"

namespace ref = supra::reference;

namespace {

struct Case {
  int64_t B, T, H, Hkv, D;
};

struct Inputs {
  torch::Tensor q, k, v;
  ref::LinearAttentionArgs args;
};

Inputs make_inputs(const Case& c, bool with_state, bool with_resets, uint64_t seed) {
  torch::manual_seed(seed);
  auto o = torch::TensorOptions().dtype(torch::kDouble);
  Inputs in;
  in.q = torch::randn({c.B, c.T, c.H, c.D}, o);
  in.k = torch::randn({c.B, c.T, c.Hkv, c.D}, o);
  in.v = torch::randn({c.B, c.T, c.Hkv, c.D}, o);
  in.args.log_gamma = supra::decay_log_gamma(supra::DecayKind::kReference, c.H);
  in.args.scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  if (with_state) in.args.initial_state = torch::randn({c.B, c.H, c.D, c.D}, o);
  if (with_resets) {
    in.args.resets = torch::rand({c.B, c.T}) < 0.04;
    if (c.T > 5) in.args.resets.index_put_({0, 5}, true);
  }
  return in;
}

double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item<double>();
}

}  // namespace

TEST(LinearAttentionForms, NaiveChunkedRecurrentAgreeInFloat64) {
  const std::vector<Case> cases = {{2, 1, 1, 1, 4},  {1, 2, 3, 1, 8},    {2, 63, 8, 8, 8},  {1, 64, 8, 2, 8},
                                   {2, 65, 9, 3, 4}, {1, 130, 3, 3, 16}, {1, 301, 9, 9, 4}, {1, 317, 8, 4, 8}};
  for (const Case& c : cases) {
    for (int variant = 0; variant < 4; ++variant) {
      const bool state = variant & 1, resets = variant & 2;
      auto in = make_inputs(c, state, resets, 100 + c.T + variant);
      auto [on, sn] = ref::naive(in.q, in.k, in.v, in.args);
      auto [or_, sr] = ref::recurrent(in.q, in.k, in.v, in.args);
      SCOPED_TRACE(testing::Message() << "T=" << c.T << " H=" << c.H << " Hkv=" << c.Hkv << " state=" << state
                                      << " resets=" << resets);
      EXPECT_LT(rel_err(or_, on), 1e-12);
      EXPECT_LT(rel_err(sr, sn), 1e-12);
      for (int64_t chunk : {16, 64}) {
        auto [oc, sc] = ref::chunked(in.q, in.k, in.v, in.args, chunk);
        EXPECT_LT(rel_err(oc, on), 1e-12) << "chunk " << chunk;
        EXPECT_LT(rel_err(sc, sn), 1e-12) << "chunk " << chunk;
      }
    }
  }
}

TEST(LinearAttentionForms, NaiveMatchesTheDefiningSum) {
  // o_i = Σ_{j≤i} γ^{i−j} (q_i·k_j) s v_j, written out as loops for one small case.
  Case c{1, 7, 2, 1, 3};
  auto in = make_inputs(c, false, false, 5);
  auto [o, s] = ref::naive(in.q, in.k, in.v, in.args);
  auto lg = in.args.log_gamma.to(torch::kDouble);
  for (int64_t h = 0; h < c.H; ++h)
    for (int64_t i = 0; i < c.T; ++i) {
      auto acc = torch::zeros({c.D}, torch::kDouble);
      for (int64_t j = 0; j <= i; ++j)
        acc += std::exp(lg[h].item<double>() * (i - j)) * (in.q[0][i][h] * in.k[0][j][0]).sum() * in.args.scale *
               in.v[0][j][0];
      EXPECT_LT((o[0][i][h] - acc).abs().max().item<double>(), 1e-12);
    }
}

TEST(LinearAttentionForms, ChunkedGradientsEqualNaive) {
  for (const Case& c : std::vector<Case>{{2, 70, 4, 2, 8}, {1, 33, 3, 3, 4}}) {
    for (bool resets : {false, true}) {
      auto in = make_inputs(c, true, resets, 7);
      std::vector<torch::Tensor> leaves = {in.q, in.k, in.v, in.args.initial_state};
      for (auto& t : leaves) t.requires_grad_(true);
      auto grads = [&](bool chunked) {
        auto [o, s] = chunked ? ref::chunked(in.q, in.k, in.v, in.args, 16) : ref::naive(in.q, in.k, in.v, in.args);
        torch::manual_seed(11);
        auto loss = (o * torch::randn_like(o)).sum() + (s * torch::randn_like(s)).sum();
        return torch::autograd::grad({loss}, leaves);
      };
      auto gn = grads(false), gc = grads(true);
      for (size_t i = 0; i < leaves.size(); ++i) EXPECT_LT(rel_err(gc[i], gn[i]), 1e-11) << "input " << i;
    }
  }
}

TEST(LinearAttentionForms, PrefillThenRecurrentStepsEqualsOnePass) {
  Case c{2, 45, 8, 2, 8};
  auto in = make_inputs(c, true, false, 3);
  const int64_t T = 37, steps = c.T - T;
  auto args = in.args;
  auto [o_full, s_full] = ref::chunked(in.q, in.k, in.v, args, 16);
  auto [o_pre, state] = ref::chunked(in.q.narrow(1, 0, T), in.k.narrow(1, 0, T), in.v.narrow(1, 0, T), args, 16);
  EXPECT_LT(rel_err(o_pre, o_full.narrow(1, 0, T)), 1e-12);
  for (int64_t t = T; t < T + steps; ++t) {
    auto [o, next] = supra::kernels::linear_attention_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t),
                                                           state, args.log_gamma, args.scale);
    EXPECT_LT(rel_err(o, o_full.select(1, t)), 1e-12) << "step " << t;
    state = next;
  }
  EXPECT_LT(rel_err(state, s_full), 1e-12);
}

TEST(LinearAttentionForms, DocumentsDoNotLeak) {
  // A packed row with documents [0, 20), [20, 50), [50, 64) equals the documents run one by one.
  Case c{1, 64, 4, 2, 8};
  auto in = make_inputs(c, false, false, 9);
  auto resets = torch::zeros({1, c.T}, torch::kBool);
  resets.index_put_({0, 20}, true);
  resets.index_put_({0, 50}, true);
  auto args = in.args;
  args.resets = resets;
  auto [o_packed, s_packed] = ref::chunked(in.q, in.k, in.v, args, 16);
  const std::vector<std::pair<int64_t, int64_t>> docs = {{0, 20}, {20, 30}, {50, 14}};
  for (auto [start, len] : docs) {
    auto [o, s] =
        ref::naive(in.q.narrow(1, start, len), in.k.narrow(1, start, len), in.v.narrow(1, start, len), in.args);
    EXPECT_LT(rel_err(o_packed.narrow(1, start, len), o), 1e-12) << "document at " << start;
    if (start == 50) {
      EXPECT_LT(rel_err(s_packed, s), 1e-12);
    }
  }
  // Perturbing the first document changes nothing in the later ones.
  auto k2 = in.k.clone();
  k2.narrow(1, 0, 20).add_(1.0);
  auto [o_changed, s_changed] = ref::chunked(in.q, k2, in.v, args, 16);
  EXPECT_TRUE(torch::equal(o_changed.narrow(1, 20, 44), o_packed.narrow(1, 20, 44)));
  EXPECT_FALSE(torch::equal(o_changed.narrow(1, 0, 20), o_packed.narrow(1, 0, 20)));
}

TEST(LinearAttentionForms, RegisteredOpMatchesReferenceAndAcceptsFloat32) {
  Case c{1, 40, 4, 4, 8};
  auto in = make_inputs(c, true, true, 4);
  auto [o_ref, s_ref] = ref::naive(in.q, in.k, in.v, in.args);
  auto q = in.q.to(torch::kFloat), k = in.k.to(torch::kFloat), v = in.v.to(torch::kFloat);
  auto args = in.args;
  args.initial_state = in.args.initial_state.to(torch::kFloat);
  auto [o, s] = supra::kernels::linear_attention(q, k, v, args, 16);
  EXPECT_EQ(o.scalar_type(), torch::kFloat);
  EXPECT_EQ(s.scalar_type(), torch::kFloat);
  EXPECT_LT(rel_err(o.to(torch::kDouble), o_ref), 1e-5);
  EXPECT_LT(rel_err(s.to(torch::kDouble), s_ref), 1e-5);
}

TEST(LinearAttentionForms, BadInputsAreRefused) {
  Case c{1, 8, 4, 4, 8};
  auto in = make_inputs(c, false, false, 1);
  auto args = in.args;
  args.log_gamma = torch::zeros({3});
  EXPECT_THROW(ref::naive(in.q, in.k, in.v, args), c10::Error);
  EXPECT_THROW(ref::naive(in.q, in.k.narrow(2, 0, 3), in.v.narrow(2, 0, 3), in.args), c10::Error);  // 4 % 3
  args = in.args;
  args.initial_state = torch::zeros({1, 4, 8, 7}, torch::kDouble);
  EXPECT_THROW(ref::chunked(in.q, in.k, in.v, args, 16), c10::Error);
  EXPECT_THROW(ref::chunked(in.q, in.k, in.v, in.args, 0), c10::Error);
}

TEST(Decay, ReferenceSlopes) {
  auto s32 = supra::decay_log_gamma(supra::DecayKind::kReference, 32).exp();
  EXPECT_NEAR(s32[0].item<float>(), 0.4313, 1e-4);
  EXPECT_NEAR(s32[31].item<float>(), 0.99610, 1e-5);
  EXPECT_EQ(supra::alibi_slopes(3), (std::vector<double>{std::pow(2, -4), std::pow(2, -8), std::pow(2, -2)}));
  // H = 9 (SmolLM2-135M): the 8 power-of-two slopes, then slope 0 of the 16-head list.
  auto s9 = supra::alibi_slopes(9);
  ASSERT_EQ(s9.size(), 9u);
  EXPECT_DOUBLE_EQ(s9[0], std::pow(2, -1));
  EXPECT_DOUBLE_EQ(s9[7], std::pow(2, -8));
  EXPECT_DOUBLE_EQ(s9[8], std::pow(2, -0.5));
  // H = 12: 8 slopes, then indices 0, 2, 4, 6 of the 16-head list: 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  auto s12 = supra::alibi_slopes(12);
  EXPECT_DOUBLE_EQ(s12[11], std::pow(2, -3.5));
  EXPECT_EQ(supra::decay_log_gamma(supra::DecayKind::kReference, 12).scalar_type(), torch::kFloat);
}

TEST(Decay, RetNetAndNone) {
  auto r = supra::decay_log_gamma(supra::DecayKind::kRetNet, 4).exp();
  for (int h = 0; h < 4; ++h) EXPECT_NEAR(r[h].item<float>(), 1 - std::pow(2.0, -5 - h), 1e-7);
  EXPECT_TRUE(torch::equal(supra::decay_log_gamma(supra::DecayKind::kNone, 5), torch::zeros({5})));
  EXPECT_THROW(supra::parse_decay("alibi"), std::exception);
}
