#include "core/formats/openlm.h"

#include <optional>
#include <set>

#include "core/base/error.h"
#include "core/formats/safetensors.h"
#include "core/formats/torch_pickle.h"

namespace supra {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool present(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

// Reads `key` (or its alternative spelling `alt`) with a default, checking the JSON type.
struct Fields {
  const json& j;
  const std::string& source;

  const json* find(const char* key, const char* alt) const {
    if (present(j, key)) return &j.at(key);
    if (alt && present(j, alt)) return &j.at(alt);
    return nullptr;
  }
  int64_t i64(const char* key, std::optional<int64_t> fallback, const char* alt = nullptr) const {
    const json* v = find(key, alt);
    if (!v) {
      if (!fallback) throw Error(source, std::string("OpenLM config has no '") + key + "'");
      return *fallback;
    }
    if (!v->is_number_integer()) throw Error(source, std::string("OpenLM field '") + key + "' must be an integer");
    return v->get<int64_t>();
  }
  double num(const char* key, double fallback) const {
    const json* v = find(key, nullptr);
    if (!v) return fallback;
    if (!v->is_number()) throw Error(source, std::string("OpenLM field '") + key + "' must be a number");
    return v->get<double>();
  }
  bool flag(const char* key, bool fallback, const char* alt = nullptr) const {
    const json* v = find(key, alt);
    if (!v) return fallback;
    if (!v->is_boolean()) throw Error(source, std::string("OpenLM field '") + key + "' must be true or false");
    return v->get<bool>();
  }
  std::string str(const char* key, const std::string& fallback, const char* alt = nullptr) const {
    const json* v = find(key, alt);
    if (!v) return fallback;
    if (!v->is_string()) throw Error(source, std::string("OpenLM field '") + key + "' must be a string");
    return v->get<std::string>();
  }
};

std::string strip_prefixes(std::string name) {
  for (const char* prefix : {"module.", "model."})
    if (name.rfind(prefix, 0) == 0) name = name.substr(std::string(prefix).size());
  return name;
}

}  // namespace

bool is_openlm_config(const json& j) {
  if (!j.is_object()) return false;
  if (present(j, "model_type") && j.at("model_type").is_string() && j.at("model_type").get<std::string>() == "openlm")
    return true;
  if (present(j, "architectures") && j.at("architectures").is_array())
    for (const json& a : j.at("architectures"))
      if (a.is_string() && (a.get<std::string>() == "OpenLMForCausalLM" || a.get<std::string>() == "OpenLMforCausalLM"))
        return true;
  return false;
}

ModelConfig openlm_to_config(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source, "config is not a JSON object");
  const Fields f{j, source};
  auto refuse = [&](const std::string& why) { throw Error(source, "OpenLM model not supported: " + why); };

  const std::string attn = f.str("attn_name", "");
  if (attn != "linear_attn")
    refuse("attn_name is '" + attn + "'; only SUPRA linear attention ('linear_attn') models can be imported");
  const std::string norm = f.str("norm_type", "", "model_norm");
  if (norm != "rms_norm") refuse("norm_type '" + norm + "' (only 'rms_norm', the Llama/Mistral RMSNorm, is supported)");
  const std::string ffn = f.str("ffn_type", "swiglu");
  if (ffn != "swiglu" && ffn != "swiglu_torch") refuse("ffn_type '" + ffn + "' (only swiglu)");
  const std::string pos = f.str("positional_embedding_type", "rotary");
  if (pos != "rotary") refuse("positional_embedding_type '" + pos + "' (only 'rotary', rotate-half RoPE)");
  if (f.flag("post_embed_norm", false)) refuse("post_embed_norm=true");
  if (f.i64("moe_freq", 0) != 0) refuse("mixture-of-experts layers (moe_freq > 0)");
  if (f.flag("apply_qk_norm", false, "qk_norm"))
    refuse(
        "apply_qk_norm=true (OpenLM normalises φ(q), φ(k) after the feature maps with a learned gain; supra's "
        "qk-norm is a parameter-free norm before them)");
  if (present(j, "decay_start")) refuse("decay_start is set (custom decay slopes)");

  ModelConfig c;
  c.vocab_size = f.i64("vocab_size", std::nullopt);
  c.hidden_size = f.i64("dim", std::nullopt, "hidden_dim");
  c.num_hidden_layers = f.i64("n_layers", std::nullopt);
  c.num_attention_heads = f.i64("n_heads", std::nullopt);
  if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0)
    throw Error(source, "OpenLM dim must be a positive multiple of n_heads");
  c.num_key_value_heads = f.i64("n_heads_kv", c.num_attention_heads);
  c.head_dim = c.hidden_size / c.num_attention_heads;
  for (const char* key : {"qk_head_dim", "v_head_dim"})
    if (present(j, key) && f.i64(key, std::nullopt) != c.head_dim)
      refuse(std::string(key) + " " + std::to_string(f.i64(key, std::nullopt)) +
             " differs from dim / n_heads = " + std::to_string(c.head_dim));
  const int64_t llama_ffn = 256 * ((static_cast<int64_t>(2.0 * 4.0 * c.hidden_size / 3.0) + 256 - 1) / 256);
  c.intermediate_size = f.i64("intermediate_dim_ffn", llama_ffn);
  c.rms_norm_eps = f.num("norm_eps", 1e-5);
  c.rope_theta = f.num("rotary_base_frequency", 10000.0);
  const double rotary_scale = f.num("rotary_scale", 1.0);
  if (rotary_scale != 1.0) {  // OpenLM divides the inverse frequencies by rotary_scale: HF "linear" scaling
    c.rope_scaling.kind = RopeScaling::Kind::kLinear;
    c.rope_scaling.factor = rotary_scale;
    if (rotary_scale <= 0) throw Error(source, "OpenLM rotary_scale must be positive");
  }
  c.max_position_embeddings = f.i64("seq_len", 2048);
  c.tie_word_embeddings = f.flag("weight_tying", false);
  if (present(j, "bos_token_id")) c.bos_token_id = f.i64("bos_token_id", std::nullopt);
  if (present(j, "eos_token_id")) {
    if (j.at("eos_token_id").is_array()) {
      for (const json& e : j.at("eos_token_id")) {
        if (!e.is_number_integer()) throw Error(source, "OpenLM field 'eos_token_id' must hold integers");
        c.eos_token_ids.push_back(e.get<int64_t>());
      }
    } else {
      c.eos_token_ids.push_back(f.i64("eos_token_id", std::nullopt));
    }
  }
  c.torch_dtype = f.str("torch_dtype", "float32", "dtype");
  // OpenLM does not record the base model; SUPRA computes the same function for both (no sliding window).
  const bool gqa = c.num_key_value_heads != c.num_attention_heads;
  c.architecture = gqa ? "MistralForCausalLM" : "LlamaForCausalLM";
  c.model_type = gqa ? "mistral" : "llama";

  SupraSettings s;
  const bool decay = f.flag("use_decay", false);
  s.decay = !decay ? DecayKind::kNone : f.flag("use_retnet_slopes", false) ? DecayKind::kRetNet : DecayKind::kReference;
  s.qk_norm = false;
  c.supra = s;
  c.validate(source);
  return c;
}

std::map<std::string, torch::Tensor> openlm_to_tensors(const std::map<std::string, torch::Tensor>& raw,
                                                       const ModelConfig& c, const std::string& source) {
  std::map<std::string, torch::Tensor> in;
  for (const auto& [name, t] : raw) {
    const std::string n = strip_prefixes(name);
    if (in.count(n)) throw Error(source, "tensor '" + n + "' appears twice (with and without a prefix)");
    in[n] = t;
  }
  std::set<std::string> used;
  auto take = [&](const std::string& name) -> torch::Tensor {
    auto it = in.find(name);
    if (it == in.end()) throw Error(source, "OpenLM checkpoint has no tensor '" + name + "'");
    used.insert(name);
    return it->second;
  };
  auto rows = [&](const torch::Tensor& t, const std::string& name, int64_t expected_rows, int64_t cols) {
    if (t.dim() != 2 || t.size(0) != expected_rows || t.size(1) != cols)
      throw Error(source, "OpenLM tensor '" + name + "' has shape " + c10::str(t.sizes()) + ", the config implies [" +
                              std::to_string(expected_rows) + ", " + std::to_string(cols) + "]");
  };

  std::map<std::string, torch::Tensor> out;
  out["model.embed_tokens.weight"] = take("tok_embeddings.weight");
  out["model.norm.weight"] = take("norm.weight");
  if (!c.tie_word_embeddings)
    out["lm_head.weight"] = take("output.weight");
  else if (in.count("output.weight"))
    used.insert("output.weight");  // the tied copy of tok_embeddings
  const int64_t q = c.q_dim(), kv = c.kv_dim(), F = c.intermediate_size;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string src = "layers." + std::to_string(l) + ".";
    const std::string dst = "model.layers." + std::to_string(l) + ".";
    out[dst + "input_layernorm.weight"] = take(src + "attention_norm.weight");
    out[dst + "post_attention_layernorm.weight"] = take(src + "ffn_norm.weight");
    // in_proj rows: [q (H·d) ; k (H_kv·d) ; v (H_kv·d)], as OpenLM splits them.
    const auto in_proj = take(src + "attention.in_proj.weight");
    rows(in_proj, src + "attention.in_proj.weight", q + 2 * kv, c.hidden_size);
    out[dst + "self_attn.q_proj.weight"] = in_proj.narrow(0, 0, q).contiguous();
    out[dst + "self_attn.k_proj.weight"] = in_proj.narrow(0, q, kv).contiguous();
    out[dst + "self_attn.v_proj.weight"] = in_proj.narrow(0, q + kv, kv).contiguous();
    out[dst + "self_attn.o_proj.weight"] = take(src + "attention.out_proj.weight");
    out[dst + "self_attn.feature_map_q.weight"] = take(src + "attention._totrain_embed.weight");
    out[dst + "self_attn.feature_map_q.bias"] = take(src + "attention._totrain_embed.bias");
    if (c.supra->separate_key_map(c.num_attention_heads, c.num_key_value_heads)) {
      out[dst + "self_attn.feature_map_k.weight"] = take(src + "attention._totrain_embed_kv.weight");
      out[dst + "self_attn.feature_map_k.bias"] = take(src + "attention._totrain_embed_kv.bias");
    }
    // w12 rows: [gate (w1) ; up (w3 in Meta's naming)]; OpenLM's w3 is the down projection.
    const auto w12 = take(src + "feed_forward.w12.weight");
    rows(w12, src + "feed_forward.w12.weight", 2 * F, c.hidden_size);
    out[dst + "mlp.gate_proj.weight"] = w12.narrow(0, 0, F).contiguous();
    out[dst + "mlp.up_proj.weight"] = w12.narrow(0, F, F).contiguous();
    out[dst + "mlp.down_proj.weight"] = take(src + "feed_forward.w3.weight");
  }
  for (const auto& [name, t] : in)
    if (!used.count(name))
      throw Error(source, "unexpected OpenLM tensor '" + name +
                              "' (not part of a linear-attention model with this config; e.g. qk-norm or LayerNorm "
                              "biases are not supported)");
  return out;
}

StoredModel read_openlm(const fs::path& dir, const json& config) {
  const std::string src = dir.string();
  StoredModel ck;
  ck.format = "openlm";
  ck.config = openlm_to_config(config, (dir / "config.json").string());
  std::map<std::string, torch::Tensor> raw;
  std::error_code ec;
  if (fs::is_regular_file(dir / "model.safetensors", ec) ||
      fs::is_regular_file(dir / "model.safetensors.index.json", ec))
    raw = load_safetensors_dir(dir);
  else if (has_torch_pickle_weights(dir))
    raw = load_torch_pickle_dir(dir);
  else
    throw Error(src, "OpenLM folder has neither model.safetensors[.index.json] nor pytorch_model.bin[.index.json]");
  ck.tensors = openlm_to_tensors(raw, ck.config, src);
  const auto& first = ck.tensors.at("model.embed_tokens.weight");
  ck.stored_dtype = first.scalar_type() == torch::kBFloat16 ? "bfloat16"
                    : first.scalar_type() == torch::kHalf   ? "float16"
                                                            : "float32";
  return ck;
}

}  // namespace supra
