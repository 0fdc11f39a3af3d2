// Hugging Face export (core/formats/hf_export.h) and the OpenLM import (core/formats/openlm.h): size parsing, the
// exported config and folder (atomic, --force, sharding, lossless round trip), the embedded modeling files, and the
// OpenLM config/name mapping on a tiny random model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "core/base/error.h"
#include "core/base/files.h"
#include "core/formats/hf_export.h"
#include "core/formats/hf_modeling_files.h"
#include "core/formats/model_io.h"
#include "core/formats/openlm.h"
#include "core/supra/convert.h"
#include "tests/cpp/tiny_model.h"
#include "tests/cpp/temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

supra::ModelConfig tiny(int64_t heads, int64_t kv, bool tied) {
  return supra::test::tiny_config({.vocab = 40, .heads = heads, .kv_heads = kv, .tied = tied, .bos = 1, .eos = 2});
}

// A converted model as a StoredModel (what read_stored_model returns for a `supra convert` folder).
supra::StoredModel converted_checkpoint(int64_t heads, int64_t kv, bool tied, supra::DecayKind decay) {
  auto m = supra::test::random_model(tiny(heads, kv, tied), 3, 0.2);
  supra::SupraSettings s;
  s.decay = decay;
  supra::convert_to_supra(m, s, 5);
  supra::StoredModel ck;
  ck.config = m->config();
  ck.format = "hf";
  ck.stored_dtype = "float32";
  for (const auto& p : m->named_parameters()) ck.tensors[p.key()] = p.value().detach().clone();
  return ck;
}

using supra::test::TempDir;

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& p : supra::list_directory(dir)) out.push_back(p.filename().string());
  return out;
}

}  // namespace

TEST(Export, ParsesByteSizesLikeTransformers) {
  EXPECT_EQ(supra::parse_byte_size("5GB"), 5'000'000'000ull);
  EXPECT_EQ(supra::parse_byte_size("500MB"), 500'000'000ull);
  EXPECT_EQ(supra::parse_byte_size("64kb"), 64'000ull / 8);  // lowercase b: bits, as transformers reads it
  EXPECT_EQ(supra::parse_byte_size("64KB"), 64'000ull);
  EXPECT_EQ(supra::parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(supra::parse_byte_size("512MiB"), 512ull << 20);
  EXPECT_EQ(supra::parse_byte_size("8Gb"), 1'000'000'000ull);
  EXPECT_EQ(supra::parse_byte_size("4096"), 4096ull);
  EXPECT_EQ(supra::parse_byte_size("4096B"), 4096ull);
  EXPECT_EQ(supra::parse_byte_size("1.5GB"), 1'500'000'000ull);
  for (const char* bad : {"", "GB", "5XB", "-1", "0", "5 GB", "1e3", "0.1B"})
    EXPECT_THROW(supra::parse_byte_size(bad), supra::Error) << bad;
}

TEST(Export, EmbeddedModelingFilesEqualTheSources) {
  const auto& files = supra::hf_modeling_files();
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) {
    const fs::path src = fs::path(SUPRA_SOURCE_DIR) / "scripts" / "shipped" / "hf_supra" / f.name;
    EXPECT_EQ(std::string(f.content), supra::read_file(src)) << f.name;
  }
}

TEST(Export, ConfigHasAutoMapAndRoundTrips) {
  const auto ck = converted_checkpoint(4, 2, false, supra::DecayKind::kRetNet);
  const json j = supra::export_config_json(ck.config, torch::kBFloat16, "src");
  EXPECT_EQ(j["model_type"], "supra");
  EXPECT_EQ(j["auto_map"]["AutoModelForCausalLM"], "modeling_supra.SupraForCausalLM");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["supra"]["feature_map"], "separate_q_and_k");
  EXPECT_EQ(j["supra"]["log_gamma"].size(), 4u);
  const auto back = supra::ModelConfig::from_json(j, "exported");
  ASSERT_TRUE(back.supra);
  EXPECT_EQ(back.supra->decay, supra::DecayKind::kRetNet);
  EXPECT_EQ(back.architecture, "LlamaForCausalLM");
  EXPECT_EQ(back.num_key_value_heads, 2);

  // Decay values that do not belong to the decay kind, or no base architecture: refused.
  json wrong = j;
  wrong["supra"]["log_gamma"][1] = -0.5;
  EXPECT_THROW(supra::read_model_config(wrong, "x"), supra::Error);
  json no_base = j;
  no_base["supra"].erase("base_architecture");
  EXPECT_THROW(supra::ModelConfig::from_json(no_base, "x"), supra::Error);

  // A softmax model cannot be exported with the SUPRA modeling file.
  EXPECT_THROW(supra::export_config_json(tiny(4, 2, false), torch::kFloat, "src"), supra::Error);

  const json g = supra::export_generation_config(ck.config, json{{"_from_model_config", true}, {"eos_token_id", 7}});
  EXPECT_FALSE(g.contains("_from_model_config"));
  EXPECT_EQ(g["eos_token_id"], 7);
  EXPECT_EQ(g["bos_token_id"], 1);
}

TEST(Export, FolderIsAtomicLosslessAndShardable) {
  TempDir tmp("folder");
  const auto ck = converted_checkpoint(4, 4, true, supra::DecayKind::kReference);
  supra::ExportOptions o;
  const fs::path out = tmp.path() / "out";
  const auto r = supra::export_hf_folder(ck, "src", out, o);
  EXPECT_EQ(r.files, (std::vector<std::string>{"config.json", "configuration_supra.py", "generation_config.json",
                                               "model.safetensors", "modeling_supra.py"}));
  EXPECT_EQ(names_in(tmp.path()), std::vector<std::string>{"out"});  // nothing left beside it
  const auto back = supra::read_stored_model(out);
  ASSERT_TRUE(back.config.supra);
  EXPECT_EQ(back.tensors.size(), ck.tensors.size());
  for (const auto& [name, t] : ck.tensors) EXPECT_TRUE(torch::equal(back.tensors.at(name), t)) << name;

  // Existing non-empty folder: refused, untouched; replaced with force.
  { std::ofstream(out / "mine.txt") << "x"; }
  EXPECT_THROW(supra::export_hf_folder(ck, "src", out, o), supra::Error);
  EXPECT_TRUE(fs::exists(out / "mine.txt"));
  o.force = true;
  o.max_shard_bytes = 4000;
  supra::export_hf_folder(ck, "src", out, o);
  EXPECT_FALSE(fs::exists(out / "mine.txt"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  EXPECT_EQ(names_in(tmp.path()), std::vector<std::string>{"out"});
  const auto sharded = supra::read_stored_model(out);
  for (const auto& [name, t] : ck.tensors) EXPECT_TRUE(torch::equal(sharded.tensors.at(name), t)) << name;

  // bf16: weights cast, config says so.
  o.dtype = torch::kBFloat16;
  supra::export_hf_folder(ck, "src", out, o);
  const auto bf = supra::read_stored_model(out);
  EXPECT_EQ(bf.stored_dtype, "bfloat16");
  EXPECT_EQ(bf.config.torch_dtype, "bfloat16");
}

TEST(OpenLM, ConfigMapping) {
  // The fields of TRI-ML's mistral_7b_linear config, as the HF wrapper stores them.
  json j = {{"model_type", "openlm"},
            {"dim", 4096},
            {"n_layers", 32},
            {"n_heads", 32},
            {"n_heads_kv", 8},
            {"vocab_size", 32000},
            {"seq_len", 2048},
            {"norm_type", "rms_norm"},
            {"attn_name", "linear_attn"},
            {"use_decay", true},
            {"use_retnet_slopes", false},
            {"decay_start", nullptr},
            {"apply_qk_norm", false},
            {"qk_head_dim", 128},
            {"v_head_dim", 128},
            {"intermediate_dim_ffn", 14336},
            {"ffn_type", "swiglu"},
            {"positional_embedding_type", "rotary"}};
  EXPECT_TRUE(supra::is_openlm_config(j));
  auto c = supra::openlm_to_config(j, "cfg");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.architecture, "MistralForCausalLM");
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  ASSERT_TRUE(c.supra);
  EXPECT_EQ(c.supra->decay, supra::DecayKind::kReference);
  EXPECT_EQ(c.parameter_count(), 7'812'321'280);  // the method doc's 7.81B: Mistral-7B + 570.6M feature maps

  // OpenLM's own model-config spelling (hidden_dim, model_norm, qk_norm) and defaults.
  json own = {{"hidden_dim", 256},
              {"n_layers", 2},
              {"n_heads", 8},
              {"vocab_size", 100},
              {"model_norm", "rms_norm"},
              {"attn_name", "linear_attn"},
              {"use_decay", true},
              {"use_retnet_slopes", true},
              {"rotary_scale", 2.0}};
  c = supra::openlm_to_config(own, "cfg");
  EXPECT_EQ(c.intermediate_size, 768);  // 256 · ceil(int(8·256/3) / 256)
  EXPECT_EQ(c.supra->decay, supra::DecayKind::kRetNet);
  EXPECT_EQ(c.rope_scaling.kind, supra::RopeScaling::Kind::kLinear);
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  own["use_decay"] = false;
  EXPECT_EQ(supra::openlm_to_config(own, "cfg").supra->decay, supra::DecayKind::kNone);

  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{{"apply_qk_norm", true},
                                                                            {"decay_start", 0.1},
                                                                            {"attn_name", "xformers_attn"},
                                                                            {"norm_type", "layer_norm"},
                                                                            {"ffn_type", "gelu"},
                                                                            {"post_embed_norm", true},
                                                                            {"v_head_dim", 64}}) {
    json bad = j;
    bad[key] = value;
    EXPECT_THROW(supra::openlm_to_config(bad, "cfg"), supra::Error) << key;
  }
  json no_norm = j;
  no_norm.erase("norm_type");
  EXPECT_THROW(supra::openlm_to_config(no_norm, "cfg"), supra::Error);
}

TEST(OpenLM, TensorNamesMapBackToTheConvertedModel) {
  for (int64_t kv : {2, 4}) {
    const auto ck = converted_checkpoint(4, kv, kv == 4, supra::DecayKind::kReference);
    const auto& t = ck.tensors;
    std::map<std::string, torch::Tensor> o;
    o["model.tok_embeddings.weight"] = t.at("model.embed_tokens.weight");
    o["model.norm.weight"] = t.at("model.norm.weight");
    if (kv != 4) o["model.output.weight"] = t.at("lm_head.weight");
    for (int l = 0; l < 2; ++l) {
      const std::string a = "model.layers." + std::to_string(l) + ".";
      o[a + "attention_norm.weight"] = t.at(a + "input_layernorm.weight");
      o[a + "ffn_norm.weight"] = t.at(a + "post_attention_layernorm.weight");
      o[a + "attention.in_proj.weight"] =
          torch::cat({t.at(a + "self_attn.q_proj.weight"), t.at(a + "self_attn.k_proj.weight"),
                      t.at(a + "self_attn.v_proj.weight")});
      o[a + "attention.out_proj.weight"] = t.at(a + "self_attn.o_proj.weight");
      o[a + "attention._totrain_embed.weight"] = t.at(a + "self_attn.feature_map_q.weight");
      o[a + "attention._totrain_embed.bias"] = t.at(a + "self_attn.feature_map_q.bias");
      if (kv != 4) {
        o[a + "attention._totrain_embed_kv.weight"] = t.at(a + "self_attn.feature_map_k.weight");
        o[a + "attention._totrain_embed_kv.bias"] = t.at(a + "self_attn.feature_map_k.bias");
      }
      o[a + "feed_forward.w12.weight"] = torch::cat({t.at(a + "mlp.gate_proj.weight"), t.at(a + "mlp.up_proj.weight")});
      o[a + "feed_forward.w3.weight"] = t.at(a + "mlp.down_proj.weight");
    }
    const auto mapped = supra::openlm_to_tensors(o, ck.config, "src");
    EXPECT_EQ(mapped.size(), t.size());
    for (const auto& [name, x] : t) EXPECT_TRUE(torch::equal(mapped.at(name), x)) << name;

    // Bare OpenLM names (its own state dict, DDP prefix) map the same way.
    std::map<std::string, torch::Tensor> bare;
    for (const auto& [name, x] : o) bare["module." + name.substr(6)] = x;
    EXPECT_EQ(supra::openlm_to_tensors(bare, ck.config, "src").size(), t.size());

    auto extra = o;
    extra["model.layers.0.attention._totrain_q_norm.weight"] = torch::ones({32});
    EXPECT_THROW(supra::openlm_to_tensors(extra, ck.config, "src"), supra::Error);
    auto wrong = o;
    wrong["model.layers.1.attention.in_proj.weight"] = torch::zeros({10, 32});
    EXPECT_THROW(supra::openlm_to_tensors(wrong, ck.config, "src"), supra::Error);
  }
}
