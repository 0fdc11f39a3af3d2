// Conversion softmax -> SUPRA: pretrained tensors kept (the same storage), feature maps initialised like
// nn.Linear from the seed, the converted model runs, packs documents without leakage, and saves/loads.
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"
#include "core/formats/safetensors.h"
#include "core/supra/convert.h"
#include "core/supra/supra_attention.h"
#include "tests/cpp/tiny_model.h"

namespace fs = std::filesystem;

namespace {

supra::ModelConfig tiny(int64_t heads, int64_t kv) {
  return supra::test::tiny_config(
      {.mistral = true, .vocab = 40, .ffn = 40, .heads = heads, .kv_heads = kv, .window = 4});
}

supra::CausalLM random_model(const supra::ModelConfig& c) { return supra::test::random_model(c, 1, 0.2); }

}  // namespace

TEST(Convert, KeepsPretrainedTensorsAndAddsFeatureMaps) {
  for (int64_t kv : {2, 4}) {
    auto c = tiny(4, kv);
    auto m = random_model(c);
    std::map<std::string, torch::Tensor> before;
    for (const auto& p : m->named_parameters()) before[p.key()] = p.value().clone();
    supra::convert_to_supra(m, {}, 7);
    auto after = m->named_parameters();
    for (const auto& [name, t] : before) {
      ASSERT_TRUE(after.contains(name)) << name;
      EXPECT_TRUE(torch::equal(after[name], t)) << name;
    }
    EXPECT_EQ(m->parameter_count() - static_cast<int64_t>(c.parameter_count()), supra::supra_added_parameters(c));
    EXPECT_TRUE(after.contains("model.layers.1.self_attn.feature_map_q.bias"));
    EXPECT_EQ(after.contains("model.layers.1.self_attn.feature_map_k.weight"), kv != 4);  // GQA only
    const double bound = 1.0 / std::sqrt(32.0);
    auto w = after["model.layers.0.self_attn.feature_map_q.weight"];
    EXPECT_LE(w.abs().max().item<double>(), bound);
    EXPECT_NEAR(w.std().item<double>(), bound / std::sqrt(3.0), 0.1 * bound);
    EXPECT_TRUE(m->config().supra.has_value());
    EXPECT_THROW(supra::convert_to_supra(m, {}, 7), supra::Error);
  }
}

TEST(Convert, SeedDeterminesFeatureMaps) {
  auto c = tiny(4, 2);
  auto a = random_model(c), b = random_model(c), d = random_model(c);
  supra::convert_to_supra(a, {}, 3);
  supra::convert_to_supra(b, {}, 3);
  supra::convert_to_supra(d, {}, 4);
  const std::string name = "model.layers.1.self_attn.feature_map_k.weight";
  EXPECT_TRUE(torch::equal(a->named_parameters()[name], b->named_parameters()[name]));
  EXPECT_FALSE(torch::equal(a->named_parameters()[name], d->named_parameters()[name]));
}

TEST(Convert, ConvertedModelPacksDocumentsWithoutLeakage) {
  auto c = tiny(4, 2);
  auto m = random_model(c);
  supra::SupraSettings s;
  s.chunk_size = 4;
  supra::convert_to_supra(m, s, 0);
  torch::NoGradGuard g;
  auto ids = torch::randint(0, 40, {1, 14}, torch::kLong);
  auto resets = torch::zeros({1, 14}, torch::kBool);
  resets.index_put_({0, 9}, true);
  // Positions restart at each document, as the trainer feeds packed rows.
  auto pos = torch::cat({torch::arange(9), torch::arange(5)}).unsqueeze(0);
  auto packed = m->forward(ids, {}, pos, resets);
  auto first = m->forward(ids.narrow(1, 0, 9));
  auto second = m->forward(ids.narrow(1, 9, 5));
  EXPECT_TRUE(torch::allclose(packed.narrow(1, 0, 9), first, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(packed.narrow(1, 9, 5), second, 1e-5, 1e-5));
  // Right padding never changes the real tokens' logits.
  auto pad_ids = torch::cat({ids.narrow(1, 0, 9), torch::zeros({1, 3}, torch::kLong)}, 1);
  auto mask = torch::cat({torch::ones({1, 9}), torch::zeros({1, 3})}, 1);
  EXPECT_TRUE(torch::allclose(m->forward(pad_ids, mask).narrow(1, 0, 9), first, 1e-5, 1e-5));
}

TEST(Convert, SavedFolderRoundTripsAndRefusesOverwrite) {
  auto c = tiny(4, 2);
  auto m = random_model(c);
  supra::convert_to_supra(m, {}, 5);
  m->eval();
  const fs::path dir = fs::temp_directory_path() / ("supra_convert_test_" + std::to_string(::getpid()));
  supra::remove_tree(dir);
  supra::save_model_folder(m, dir);
  auto loaded = supra::load_model(dir);
  ASSERT_TRUE(loaded->config().supra.has_value());
  for (const auto& p : m->named_parameters())
    EXPECT_TRUE(torch::equal(loaded->named_parameters()[p.key()], p.value())) << p.key();
  torch::NoGradGuard g;
  auto ids = torch::randint(0, 40, {2, 9}, torch::kLong);
  EXPECT_TRUE(torch::equal(loaded->forward(ids), m->forward(ids)));
  const auto size_before = fs::file_size(dir / "model.safetensors");
  EXPECT_THROW(supra::save_model_folder(m, dir), supra::Error);
  EXPECT_EQ(fs::file_size(dir / "model.safetensors"), size_before);
  supra::remove_tree(dir);
}
