// CausalLM behaviour that does not need HF: RoPE, parameter names and counts, masks (padding, sliding window), dtypes.
// Exactness against Hugging Face transformers is checked by tests/python/test_hf_logits.py.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/model/rope.h"
#include "core/model/softmax_attention.h"
#include "tests/cpp/tiny_model.h"

namespace fs = std::filesystem;

namespace {

supra::ModelConfig tiny_config(int64_t heads = 4, int64_t kv = 2) {
  return supra::test::tiny_config({.heads = heads, .kv_heads = kv});
}

supra::CausalLM random_model(const supra::ModelConfig& c, uint64_t seed = 0) {
  return supra::test::random_model(c, seed, 0.2);
}

}  // namespace

TEST(Rope, DefaultFrequenciesMatchFormula) {
  auto f = supra::rope_inv_freq(16, 10000.0, {});
  ASSERT_EQ(f.size(0), 8);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(f[i].item<float>(), 1.0 / std::pow(10000.0, 2.0 * i / 16), 1e-7);
  supra::RopeScaling lin;
  lin.kind = supra::RopeScaling::Kind::kLinear;
  lin.factor = 4;
  EXPECT_TRUE(torch::allclose(supra::rope_inv_freq(16, 10000.0, lin), f / 4));
}

TEST(Rope, Llama3KeepsHighAndScalesLowFrequencies) {
  supra::RopeScaling s;
  s.kind = supra::RopeScaling::Kind::kLlama3;
  s.factor = 8;
  s.original_max_position_embeddings = 64;
  auto base = supra::rope_inv_freq(32, 500000.0, {});
  auto scaled = supra::rope_inv_freq(32, 500000.0, s);
  EXPECT_FLOAT_EQ(scaled[0].item<float>(), base[0].item<float>());           // wavelength 2π < 16: kept
  EXPECT_FLOAT_EQ(scaled[15].item<float>(), base[15].item<float>() / 8.0f);  // very long wavelength: /factor
}

TEST(CausalLM, ParameterNamesMatchHuggingFace) {
  auto c = tiny_config();
  c.tie_word_embeddings = true;
  supra::CausalLM m(c);
  auto params = m->named_parameters();
  EXPECT_TRUE(params.contains("model.embed_tokens.weight"));
  EXPECT_TRUE(params.contains("model.layers.1.self_attn.k_proj.weight"));
  EXPECT_TRUE(params.contains("model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(params.contains("model.layers.0.post_attention_layernorm.weight"));
  EXPECT_TRUE(params.contains("model.norm.weight"));
  EXPECT_FALSE(params.contains("lm_head.weight"));  // tied
  EXPECT_EQ(params["model.layers.1.self_attn.k_proj.weight"].sizes(), (std::vector<int64_t>{16, 32}));
  c.tie_word_embeddings = false;
  EXPECT_TRUE(supra::CausalLM(c)->named_parameters().contains("lm_head.weight"));
}

TEST(CausalLM, PaddingDoesNotChangeRealTokens) {
  auto m = random_model(tiny_config());
  torch::NoGradGuard g;
  auto ids = torch::tensor({{3, 7, 9, 11, 0, 0}}, torch::kLong);
  auto mask = torch::tensor({{1, 1, 1, 1, 0, 0}}, torch::kLong);
  auto padded = m->forward(ids, mask).slice(1, 0, 4);
  auto plain = m->forward(ids.slice(1, 0, 4));
  EXPECT_TRUE(torch::allclose(padded, plain, 1e-5, 1e-6));
  // Left padding with shifted positions gives the same logits as the unpadded row.
  auto left = torch::tensor({{0, 0, 3, 7, 9, 11}}, torch::kLong);
  auto lmask = torch::tensor({{0, 0, 1, 1, 1, 1}}, torch::kLong);
  auto pos = torch::tensor({{0, 0, 0, 1, 2, 3}}, torch::kLong);
  EXPECT_TRUE(torch::allclose(m->forward(left, lmask, pos).slice(1, 2, 6), plain, 1e-5, 1e-6));
}

TEST(CausalLM, SlidingWindowMask) {
  auto mask = supra::causal_attention_mask(6, 3, {}, torch::kCPU).squeeze();
  // Row 5 sees positions 3, 4, 5 only.
  EXPECT_EQ(mask[5].to(torch::kLong).sum().item<int64_t>(), 3);
  EXPECT_FALSE(mask[5][2].item<bool>());
  EXPECT_TRUE(mask[5][3].item<bool>());
  EXPECT_FALSE(mask[1][2].item<bool>());  // causal

  // A window at least as long as the sequence changes nothing; a shorter one changes late positions only.
  auto c = tiny_config();
  auto m = random_model(c, 1);
  c.sliding_window = 4;
  auto mw = random_model(c, 1);
  torch::NoGradGuard g;
  auto ids = torch::randint(0, 50, {2, 10}, torch::kLong);
  auto a = m->forward(ids), b = mw->forward(ids);
  EXPECT_TRUE(torch::allclose(a.slice(1, 0, 4), b.slice(1, 0, 4), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(a.slice(1, 6, 10), b.slice(1, 6, 10), 1e-3, 1e-3));
}

TEST(CausalLM, Bf16CloseToF32) {
  auto m = random_model(tiny_config(), 2);
  torch::NoGradGuard g;
  auto ids = torch::randint(0, 50, {1, 12}, torch::kLong);
  auto ref = m->forward(ids);
  m->to(torch::kBFloat16);
  auto low = m->forward(ids).to(torch::kFloat);
  EXPECT_LT(((low - ref).abs().max() / ref.abs().max()).item<float>(), 3e-2);
}

TEST(CausalLM, AnalyticParameterCountMatchesModules) {
  for (bool tied : {false, true})
    for (int64_t kv : {1, 2, 4}) {
      auto c = tiny_config(4, kv);
      c.tie_word_embeddings = tied;
      EXPECT_EQ(supra::CausalLM(c)->parameter_count(), c.parameter_count());
      c.supra = supra::SupraSettings{};
      EXPECT_EQ(supra::CausalLM(c)->parameter_count(), c.parameter_count());
    }
}
