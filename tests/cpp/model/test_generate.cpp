// Generation with caches: a chunked prefill + recurrent decoding equals the full forward (transformer and SUPRA,
// GQA, sliding window); batched prompts of mixed lengths equal one-by-one generation; bounded K/V policies: TOVA
// and window with K ≥ length equal the full cache, the window policy equals Mistral's sliding-window attention,
// and TOVA's eviction order equals a plain loop implementation of the policy.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/model/decoder.h"
#include "core/model/generate.h"
#include "core/model/rope.h"
#include "core/model/softmax_attention.h"
#include "core/supra/convert.h"
#include "tests/cpp/tiny_model.h"

namespace {

supra::ModelConfig tiny(int64_t heads, int64_t kv, std::optional<int64_t> window) {
  return supra::test::tiny_config({.mistral = true, .ffn = 40, .heads = heads, .kv_heads = kv, .window = window});
}

supra::CausalLM random_model(const supra::ModelConfig& c, bool supra_layers) {
  auto m = supra::test::random_model(c, 1, 0.3);
  if (supra_layers) supra::convert_to_supra(m, supra::SupraSettings{}, 7);
  return m;
}

std::vector<int64_t> to_vec(const torch::Tensor& t) {
  auto c = t.contiguous().to(torch::kLong);
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

torch::Tensor tokens(int64_t n, int64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(1, 50, {1, n}, torch::kLong);
}

// Logits of every position by prefill of `first` tokens then one token per step, vs the full forward.
void expect_prefill_decode_matches(supra::CausalLM& m, int64_t T, int64_t first) {
  torch::NoGradGuard g;
  auto ids = tokens(T, 3);
  auto full = m->forward(ids).to(torch::kFloat);  // [1, T, V]
  supra::InferenceCache cache(m->config().num_hidden_layers);
  auto logits = m->forward_cached(ids.narrow(1, 0, first), {}, cache);
  EXPECT_TRUE(torch::allclose(logits, full.select(1, first - 1), 1e-5, 1e-5));
  for (int64_t t = first; t < T; ++t) {
    logits = m->forward_cached(ids.narrow(1, t, 1), {}, cache);
    EXPECT_TRUE(torch::allclose(logits, full.select(1, t), 1e-5, 1e-5))
        << "position " << t << " max diff " << (logits - full.select(1, t)).abs().max().item<double>();
  }
  EXPECT_EQ(cache.next_position.item<int64_t>(), T);
}

}  // namespace

TEST(Generate, PrefillThenDecodeEqualsFullForwardTransformer) {
  auto m = random_model(tiny(4, 2, /*window=*/5), false);  // GQA, and a window shorter than the sequence
  expect_prefill_decode_matches(m, 14, 6);
  expect_prefill_decode_matches(m, 9, 1);
}

TEST(Generate, PrefillThenDecodeEqualsFullForwardSupra) {
  for (int64_t kv : {4, 2}) {  // shared feature map, and GQA with a separate key map
    auto m = random_model(tiny(4, kv, std::nullopt), true);
    expect_prefill_decode_matches(m, 21, 7);
    expect_prefill_decode_matches(m, 6, 1);
  }
}

TEST(Generate, SupraStateIsConstantSize) {
  auto m = random_model(tiny(4, 2, std::nullopt), true);
  supra::GenerateOptions o;
  o.sampling.temperature = 0;
  o.max_new_tokens = 3;
  auto short_run = supra::generate(m, {{1, 2}}, o);
  o.max_new_tokens = 40;
  auto long_run = supra::generate(m, {{1, 2, 3, 4, 5, 6, 7, 8, 9}}, o);
  EXPECT_EQ(short_run.stats.state_bytes, long_run.stats.state_bytes);
  EXPECT_EQ(long_run.stats.state_bytes, 2 /*layers*/ * 4 /*heads*/ * 8 * 8 * 4 /*fp32*/);
}

TEST(Generate, BatchedMixedLengthsEqualOneByOne) {
  const std::vector<std::vector<int64_t>> prompts = {{1, 5, 9}, {1, 7, 3, 3, 8, 2, 11}, {1}, {1, 4, 4, 4, 4}};
  for (bool supra_layers : {false, true}) {
    auto m = random_model(tiny(4, 2, supra_layers ? std::nullopt : std::optional<int64_t>(6)), supra_layers);
    supra::GenerateOptions o;
    o.sampling.temperature = 0;
    o.max_new_tokens = 12;
    o.stop_ids = {49};
    auto batched = supra::generate(m, prompts, o);
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto single = supra::generate(m, {prompts[i]}, o);
      EXPECT_EQ(batched.tokens[i], single.tokens[0]) << "prompt " << i << (supra_layers ? " (SUPRA)" : " (softmax)");
    }
  }
}

TEST(Generate, SamplingIsSeededAndFiltersWork) {
  auto m = random_model(tiny(4, 2, std::nullopt), false);
  supra::GenerateOptions o;
  o.max_new_tokens = 20;
  o.seed = 11;
  o.sampling = {0.9, 5, 0.8, 1.3};
  auto a = supra::generate(m, {{1, 2, 3}}, o), b = supra::generate(m, {{1, 2, 3}}, o);
  EXPECT_EQ(a.tokens, b.tokens);
  // top-k 1 is greedy, whatever the temperature.
  supra::GenerateOptions g = o;
  g.sampling = {1.5, 1, 1.0, 1.0};
  supra::GenerateOptions greedy = o;
  greedy.sampling = {0.0, 0, 1.0, 1.0};
  EXPECT_EQ(supra::generate(m, {{1, 2, 3}}, g).tokens, supra::generate(m, {{1, 2, 3}}, greedy).tokens);
  // sample_next: top-p keeps the smallest set holding the mass; the repetition penalty divides positive logits.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto logits = torch::tensor({{0.0f, 3.0f, 2.9f, -1.0f}});
  for (int i = 0; i < 50; ++i) {
    int64_t t = supra::sample_next(logits, {1.0, 0, 0.5, 1.0}, {}, gen).item<int64_t>();
    EXPECT_EQ(t, 1);  // p(1) ≈ 0.51 ≥ 0.5: token 2 is dropped (the mass before it already reaches top_p)
    if (t != 1) break;
  }
  EXPECT_EQ(
      supra::sample_next(logits, {0.0, 0, 1.0, 2.0}, supra::seen_tokens({{1}}, 4, torch::kCPU), gen).item<int64_t>(),
      2);  // 3/2 < 2.9
}

TEST(Generate, BoundedPoliciesWithLargeKEqualFullCache) {
  auto m = random_model(tiny(4, 2, std::nullopt), false);
  supra::GenerateOptions o;
  o.sampling.temperature = 0;
  o.max_new_tokens = 15;
  auto full = supra::generate(m, {{1, 3, 5, 7, 9, 11}, {1, 2}}, o);
  for (auto policy : {supra::KvPolicy::kTova, supra::KvPolicy::kWindow}) {
    o.kv = {policy, 64};
    auto bounded = supra::generate(m, {{1, 3, 5, 7, 9, 11}, {1, 2}}, o);
    EXPECT_EQ(bounded.tokens, full.tokens) << supra::kv_policy_name(policy);
    EXPECT_EQ(bounded.stats.state_bytes, full.stats.state_bytes);
  }
}

TEST(Generate, WindowPolicyEqualsSlidingWindowAttention) {
  // The window policy keeps K cached tokens and the query attends to them and itself: Mistral's window of K + 1.
  const int64_t K = 4, T = 13;
  auto plain = random_model(tiny(4, 2, std::nullopt), false);
  auto windowed = random_model(tiny(4, 2, K + 1), false);  // same seed: same weights
  torch::NoGradGuard g;
  auto ids = tokens(T, 5);
  auto full = windowed->forward(ids);
  supra::InferenceCache cache(2, {supra::KvPolicy::kWindow, K});
  auto logits = plain->forward_cached(ids.narrow(1, 0, K), {}, cache, true);
  EXPECT_TRUE(torch::allclose(logits, full.narrow(1, 0, K), 1e-5, 1e-5));
  for (int64_t t = K; t < T; ++t) {
    auto l = plain->forward_cached(ids.narrow(1, t, 1), {}, cache);
    EXPECT_TRUE(torch::allclose(l, full.select(1, t), 1e-5, 1e-5)) << "position " << t;
    EXPECT_EQ(cache.layers[0].pos.size(1), K);
  }
  EXPECT_EQ(to_vec(cache.layers[1].pos[0]), std::vector<int64_t>({9, 10, 11, 12}));
}

TEST(Generate, TovaEvictionOrderMatchesPlainImplementation) {
  // One attention layer fed token by token; the reference keeps a list of cached positions and, after each step,
  // drops the one with the lowest attention weight of the current query, averaged over the heads (float64 loops).
  auto c = tiny(4, 2, std::nullopt);
  torch::manual_seed(4);
  auto attn = std::make_shared<supra::SoftmaxAttentionImpl>(c);
  {
    torch::NoGradGuard g;
    for (auto& p : attn->parameters()) p.normal_(0, 0.5);
  }
  torch::NoGradGuard g;
  const int64_t K = 3, T = 12, H = 4, Hkv = 2, d = 8;
  auto x = torch::randn({1, T, c.hidden_size});
  auto inv_freq = supra::rope_inv_freq(d, c.rope_theta, c.rope_scaling);
  auto pos_all = torch::arange(T, torch::kLong).unsqueeze(0);
  auto rope = supra::rope_tables(inv_freq, pos_all);
  auto q_all = supra::apply_rope(attn->q_proj(x).view({1, T, H, d}).transpose(1, 2), rope)[0].to(torch::kDouble);
  auto k_all = supra::apply_rope(attn->k_proj(x).view({1, T, Hkv, d}).transpose(1, 2), rope)[0].to(torch::kDouble);

  supra::LayerCache cache;
  std::vector<int64_t> kept;  // the reference
  for (int64_t t = 0; t < T; ++t) {
    supra::AttentionContext ctx;
    ctx.positions = pos_all.narrow(1, t, 1);
    ctx.rope = supra::rope_tables(inv_freq, ctx.positions);
    ctx.cache = &cache;
    ctx.kv = {supra::KvPolicy::kTova, K};
    attn->forward(x.narrow(1, t, 1), ctx);

    kept.push_back(t);
    if (static_cast<int64_t>(kept.size()) > K) {
      std::vector<double> score(kept.size(), 0.0);
      for (int64_t h = 0; h < H; ++h) {
        std::vector<double> s(kept.size());
        double mx = -1e300, z = 0;
        for (size_t j = 0; j < kept.size(); ++j) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i)
            dot += q_all[h][t][i].item<double>() * k_all[h / (H / Hkv)][kept[j]][i].item<double>();
          s[j] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, s[j]);
        }
        for (auto& v : s) z += (v = std::exp(v - mx));
        for (size_t j = 0; j < kept.size(); ++j) score[j] += s[j] / z / H;
      }
      kept.erase(kept.begin() + (std::min_element(score.begin(), score.end()) - score.begin()));
    }
    auto got = to_vec(cache.pos[0]);
    ASSERT_EQ(got, kept) << "after token " << t;
  }
}

// The decode fast path (core/model/decoder.h: fused input projection with the feature maps folded in, the fused
// step op; the generic one-token forward for softmax layers) against the reference path (forward_cached), step by
// step from the same prefill: SUPRA logits and states to float rounding, softmax bitwise; then whole generations
// give the same greedy tokens (SUPRA with a shared map, a separate key map, qk_norm; softmax with GQA and a window).
TEST(Generate, DecoderStepMatchesForwardCached) {
  struct Case {
    int64_t kv;
    bool supra_layers, qk_norm;
  };
  for (auto c : {Case{4, true, false}, Case{2, true, false}, Case{2, true, true}, Case{2, false, false}}) {
    auto m =
        supra::test::random_model(tiny(4, c.kv, c.supra_layers ? std::nullopt : std::optional<int64_t>(3)), 1, 0.3);
    if (c.supra_layers) supra::convert_to_supra(m, supra::SupraSettings{.qk_norm = c.qk_norm}, 7);
    torch::NoGradGuard g;
    auto prompt = torch::tensor({{0, 0, 1, 5, 9}, {1, 7, 3, 3, 8}}, torch::kLong);
    auto real = torch::tensor({{0, 0, 1, 1, 1}, {1, 1, 1, 1, 1}}, torch::kLong).to(torch::kBool);  // left padding
    supra::InferenceCache fast_cache(2), ref_cache(2);
    m->forward_cached(prompt, real, fast_cache);
    m->forward_cached(prompt, real, ref_cache);
    supra::Decoder decoder(m, fast_cache, 64);
    auto ids = torch::tensor({3, 11}, torch::kLong);
    for (int step = 0; step < 12; ++step) {
      auto fast = decoder.step(ids);
      auto ref = m->forward_cached(ids.view({2, 1}), {}, ref_cache);
      const std::string what = (c.supra_layers ? "SUPRA kv=" : "softmax kv=") + std::to_string(c.kv) +
                               (c.qk_norm ? " qk_norm" : "") + " step " + std::to_string(step);
      if (c.supra_layers) {
        EXPECT_TRUE(torch::allclose(fast, ref, 1e-5, 1e-5))
            << what << " max diff " << (fast - ref).abs().max().item<double>();
        for (int64_t l = 0; l < 2; ++l)
          EXPECT_TRUE(torch::allclose(fast_cache.layers[l].state, ref_cache.layers[l].state, 1e-5, 1e-6)) << what;
      } else {
        EXPECT_TRUE(torch::equal(fast, ref)) << what;
      }
      EXPECT_TRUE(torch::equal(fast_cache.next_position, ref_cache.next_position)) << what;
      ids = ref.argmax(-1);
    }
  }
}

TEST(Generate, FastDecodeGivesTheReferenceTokens) {
  const std::vector<std::vector<int64_t>> prompts = {{1, 5, 9}, {1, 7, 3, 3, 8, 2, 11}, {1}, {1, 4, 4, 4, 4}};
  for (int64_t kv : {4, 2}) {
    for (bool qk_norm : {false, true}) {
      auto m = supra::test::random_model(tiny(4, kv, std::nullopt), 1, 0.3);
      supra::convert_to_supra(m, supra::SupraSettings{.qk_norm = qk_norm}, 7);
      supra::GenerateOptions o;
      o.sampling.temperature = 0;
      o.max_new_tokens = 32;
      auto fast = supra::generate(m, prompts, o);
      o.reference_decode = true;
      auto ref = supra::generate(m, prompts, o);
      EXPECT_EQ(fast.tokens, ref.tokens) << "kv " << kv << (qk_norm ? " qk_norm" : "");
      EXPECT_EQ(fast.stats.step_seconds.size(), 31u);  // 32 tokens, the first one not timed
    }
  }
}

// On CUDA: the fast path eager and replayed as a CUDA graph (step 1 eager, step 2 captured then replayed, later
// steps replayed) against the reference path step by step from the same prefill, and whole greedy generations
// equal to the CPU's. Skipped without a GPU.
TEST(CudaDecode, GraphReplayEqualsEagerAndReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto cfg =
      supra::test::tiny_config({.vocab = 64, .hidden = 128, .ffn = 96, .heads = 2, .kv_heads = 1, .head_dim = 64});
  auto m = supra::test::random_model(cfg, 3, 0.2);
  supra::convert_to_supra(m, supra::SupraSettings{}, 7);
  const std::vector<std::vector<int64_t>> prompts = {{1, 5, 9}, {1, 7, 3, 3, 8, 2, 11}};
  supra::GenerateOptions o;
  o.sampling.temperature = 0;
  o.max_new_tokens = 20;
  auto cpu = supra::generate(m, prompts, o);
  m->to(torch::kCUDA);
  auto eager = supra::generate(m, prompts, o);
  o.cuda_graph = true;
  auto graph = supra::generate(m, prompts, o);
  EXPECT_EQ(eager.tokens, cpu.tokens);
  EXPECT_EQ(graph.tokens, cpu.tokens);

  torch::NoGradGuard g;
  auto prompt = torch::tensor({{1, 5, 9, 4}, {1, 7, 3, 3}}, torch::kLong).to(torch::kCUDA);
  supra::InferenceCache fast_cache(2), ref_cache(2);
  m->forward_cached(prompt, {}, fast_cache);
  m->forward_cached(prompt, {}, ref_cache);
  supra::Decoder decoder(m, fast_cache, 64, {.cuda_graph = true});
  ASSERT_TRUE(decoder.uses_graph());
  auto ids = torch::tensor({3, 11}, torch::kLong).to(torch::kCUDA);
  for (int step = 0; step < 6; ++step) {
    auto fast = decoder.step(ids).clone();
    auto ref = m->forward_cached(ids.view({2, 1}), {}, ref_cache);
    EXPECT_TRUE(torch::allclose(fast, ref, 1e-4, 1e-4))
        << "step " << step << " max diff " << (fast - ref).abs().max().item<double>();
    EXPECT_TRUE(torch::allclose(fast_cache.layers[1].state, ref_cache.layers[1].state, 1e-4, 1e-5)) << "step " << step;
    EXPECT_TRUE(torch::equal(fast_cache.next_position, ref_cache.next_position)) << "step " << step;
    ids = ref.argmax(-1);
  }
}
