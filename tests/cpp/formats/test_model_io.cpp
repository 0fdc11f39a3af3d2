// Reading stored models: llama2.c import (stories260K), truncated files, missing paths.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/model_io.h"

namespace fs = std::filesystem;

namespace {
const fs::path kStories = fs::path(SUPRA_SHARED_DIR) / "models/stories260K/stories260K.bin";
}  // namespace

TEST(Llama2c, ImportsStories260K) {
  if (!fs::exists(kStories)) GTEST_SKIP() << "stories260K not found at " << kStories;
  auto ck = supra::read_llama2c(kStories);
  EXPECT_EQ(ck.config.hidden_size, 64);
  EXPECT_EQ(ck.config.num_hidden_layers, 5);
  EXPECT_EQ(ck.config.num_attention_heads, 8);
  EXPECT_EQ(ck.config.num_key_value_heads, 4);
  EXPECT_EQ(ck.config.vocab_size, 512);
  EXPECT_TRUE(ck.config.tie_word_embeddings);
  auto m = supra::build_model(ck, kStories.string(), torch::kFloat, torch::kCPU);
  EXPECT_EQ(m->parameter_count(), 260032);
  // A real language model: given BOS, its greedy continuation has low loss under itself and is not one token.
  torch::NoGradGuard g;
  std::vector<int64_t> ids = {1};
  for (int i = 0; i < 30; ++i) {
    auto logits = m->forward(torch::tensor(ids, torch::kLong).unsqueeze(0));
    ids.push_back(logits[0][-1].argmax().item<int64_t>());
  }
  std::set<int64_t> distinct(ids.begin(), ids.end());
  EXPECT_GT(distinct.size(), 8u);
  auto logits = m->forward(torch::tensor(ids, torch::kLong).unsqueeze(0))[0];
  auto targets = torch::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end()), torch::kLong);
  auto loss = torch::nn::functional::cross_entropy(logits.slice(0, 0, ids.size() - 1), targets);
  EXPECT_LT(loss.item<float>(), 1.5);
}

TEST(Llama2c, TruncatedFileIsRefused) {
  if (!fs::exists(kStories)) GTEST_SKIP() << "stories260K not found at " << kStories;
  auto path = fs::temp_directory_path() / "supra_truncated_stories.bin";
  {
    std::ifstream in(kStories, std::ios::binary);
    std::vector<char> buf(100000);
    in.read(buf.data(), buf.size());
    std::ofstream(path, std::ios::binary).write(buf.data(), buf.size());
  }
  try {
    supra::read_llama2c(path);
    FAIL();
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos);
  }
  fs::remove(path);
}

TEST(StoredModel, MissingPathsAreClearErrors) {
  EXPECT_THROW(supra::read_stored_model("/nonexistent/model"), supra::Error);
  auto dir = fs::temp_directory_path() / "supra_empty_model_dir";
  fs::create_directories(dir);
  try {
    supra::read_stored_model(dir);
    FAIL();
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos);
  }
  supra::remove_tree(dir);
}
