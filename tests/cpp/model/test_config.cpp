// ModelConfig parsing: HF v4/v5 spellings, derived fields, and every refusal of what supra cannot reproduce.
#include <gtest/gtest.h>

#include <fstream>

#include "core/base/error.h"
#include "core/model/config.h"

using nlohmann::json;
using supra::ModelConfig;

namespace {

json llama() {
  return json{{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", 128},
              {"hidden_size", 64},
              {"intermediate_size", 96},
              {"num_hidden_layers", 2},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 10000.0},
              {"bos_token_id", 1},
              {"eos_token_id", 2},
              {"hidden_act", "silu"}};
}

void expect_refused(const json& j, const std::string& keyword) {
  try {
    ModelConfig::from_json(j, "cfg.json");
    FAIL() << "accepted a config it should refuse (" << keyword << ")";
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(keyword), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Config, ParsesLlamaWithDerivedHeadDim) {
  auto c = ModelConfig::from_json(llama(), "cfg.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.gqa_groups(), 2);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.sliding_window.has_value());
  ASSERT_EQ(c.eos_token_ids.size(), 1u);
  EXPECT_EQ(c.rope_scaling.kind, supra::RopeScaling::Kind::kDefault);
}

TEST(Config, ExplicitHeadDimAndEosList) {
  auto j = llama();
  j["head_dim"] = 24;
  j["eos_token_id"] = {2, 3};
  j["num_key_value_heads"] = nullptr;  // absent -> MHA
  auto c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.head_dim, 24);
  EXPECT_EQ(c.q_dim(), 96);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2, 3}));
}

TEST(Config, MistralSlidingWindow) {
  auto j = llama();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  j["sliding_window"] = 4096;
  auto c = ModelConfig::from_json(j, "cfg.json");
  ASSERT_TRUE(c.sliding_window.has_value());
  EXPECT_EQ(*c.sliding_window, 4096);
  j["sliding_window"] = nullptr;
  EXPECT_FALSE(ModelConfig::from_json(j, "cfg.json").sliding_window.has_value());
}

TEST(Config, RopeScalingV4AndV5Spellings) {
  auto j = llama();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  j["rope_theta"] = 500000.0;
  auto c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.rope_scaling.kind, supra::RopeScaling::Kind::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);

  auto v5 = llama();
  v5.erase("rope_theta");
  v5["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1e6}};
  auto c5 = ModelConfig::from_json(v5, "cfg.json");
  EXPECT_EQ(c5.rope_scaling.kind, supra::RopeScaling::Kind::kLinear);
  EXPECT_DOUBLE_EQ(c5.rope_scaling.factor, 2.0);
  EXPECT_DOUBLE_EQ(c5.rope_theta, 1e6);

  auto plain = llama();
  plain["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e5}};
  EXPECT_DOUBLE_EQ(ModelConfig::from_json(plain, "cfg.json").rope_theta, 5e5);
}

TEST(Config, RoundTripThroughToJson) {
  auto j = llama();
  j["rope_scaling"] = {{"type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto c = ModelConfig::from_json(j, "cfg.json");
  auto c2 = ModelConfig::from_json(c.to_json(), "round trip");
  EXPECT_EQ(c2.to_json(), c.to_json());
}

TEST(Config, RefusesWhatItCannotReproduce) {
  auto j = llama();
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_refused(j, "unsupported architecture");
  j = llama();
  j["hidden_act"] = "gelu";
  expect_refused(j, "hidden_act");
  j = llama();
  j["attention_bias"] = true;
  expect_refused(j, "attention_bias");
  j = llama();
  j["mlp_bias"] = true;
  expect_refused(j, "mlp_bias");
  j = llama();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_refused(j, "yarn");
  j = llama();
  j["num_key_value_heads"] = 3;
  expect_refused(j, "multiple of num_key_value_heads");
  j = llama();
  j.erase("vocab_size");
  expect_refused(j, "vocab_size");
  j = llama();
  j["hidden_size"] = "64";
  expect_refused(j, "hidden_size");
  j = llama();
  j["eos_token_id"] = 500;
  expect_refused(j, "eos_token_id");
  j = llama();
  j["sliding_window"] = 16;
  expect_refused(j, "sliding_window");
  j = llama();
  j["head_dim"] = 15;
  expect_refused(j, "even");
}

TEST(Config, MissingOrBrokenFile) {
  EXPECT_THROW(ModelConfig::from_file("/nonexistent/config.json"), supra::Error);
  auto path = std::filesystem::temp_directory_path() / "supra_test_broken_config.json";
  { std::ofstream(path) << "{\"architectures\": [\"LlamaForCausalLM\"], "; }
  try {
    ModelConfig::from_file(path);
    FAIL();
  } catch (const supra::Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos);
  }
  std::filesystem::remove(path);
}

TEST(Config, ParameterCountOfSevenBillionModels) {
  // Mistral-7B: 7,241,732,096 parameters; SUPRA adds 4096²+4096 + 1024²+1024 per layer (570.6M in all).
  auto m = ModelConfig::from_json(json{{"architectures", {"MistralForCausalLM"}},
                                       {"model_type", "mistral"},
                                       {"vocab_size", 32000},
                                       {"hidden_size", 4096},
                                       {"intermediate_size", 14336},
                                       {"num_hidden_layers", 32},
                                       {"num_attention_heads", 32},
                                       {"num_key_value_heads", 8},
                                       {"sliding_window", 4096}},
                                  "mistral-7b");
  EXPECT_EQ(m.parameter_count(), 7241732096);
  m.supra = supra::SupraSettings{};
  EXPECT_EQ(m.parameter_count() - 7241732096, 570589184);
  // Llama-2-7B (MHA, shared feature map): 6,738,415,616 parameters.
  auto l = ModelConfig::from_json(json{{"architectures", {"LlamaForCausalLM"}},
                                       {"vocab_size", 32000},
                                       {"hidden_size", 4096},
                                       {"intermediate_size", 11008},
                                       {"num_hidden_layers", 32},
                                       {"num_attention_heads", 32}},
                                  "llama-2-7b");
  EXPECT_EQ(l.parameter_count(), 6738415616);
}
