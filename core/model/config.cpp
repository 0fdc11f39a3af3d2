// Parsing and validation of Hugging Face Llama/Mistral config.json files.
#include "core/model/config.h"

#include <fstream>

#include "core/base/error.h"
#include "core/base/files.h"

namespace supra {

DecayKind parse_decay(const std::string& name) {
  if (name == "reference") return DecayKind::kReference;
  if (name == "retnet") return DecayKind::kRetNet;
  if (name == "none") return DecayKind::kNone;
  throw Error("decay", "unknown decay '" + name + "' (reference, retnet, none)");
}

std::string to_string(DecayKind kind) {
  switch (kind) {
    case DecayKind::kReference: return "reference";
    case DecayKind::kRetNet: return "retnet";
    case DecayKind::kNone: return "none";
  }
  return "?";
}

namespace {

using json = nlohmann::json;

bool present(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

int64_t get_int(const json& j, const char* key, const std::string& source) {
  if (!present(j, key)) throw Error(source, std::string("missing required field '") + key + "'");
  const json& v = j.at(key);
  if (!v.is_number_integer()) throw Error(source, std::string("field '") + key + "' must be an integer");
  return v.get<int64_t>();
}

int64_t get_int_or(const json& j, const char* key, int64_t fallback, const std::string& source) {
  return present(j, key) ? get_int(j, key, source) : fallback;
}

double get_num_or(const json& j, const char* key, double fallback, const std::string& source) {
  if (!present(j, key)) return fallback;
  if (!j.at(key).is_number()) throw Error(source, std::string("field '") + key + "' must be a number");
  return j.at(key).get<double>();
}

bool get_bool_or(const json& j, const char* key, bool fallback, const std::string& source) {
  if (!present(j, key)) return fallback;
  if (!j.at(key).is_boolean()) throw Error(source, std::string("field '") + key + "' must be true or false");
  return j.at(key).get<bool>();
}

// Reads RoPE settings: transformers v5 puts them (with rope_theta) in "rope_parameters", v4 uses "rope_theta" and
// "rope_scaling". Only scalings supra reproduces exactly are accepted.
void parse_rope(const json& j, ModelConfig& c, const std::string& source) {
  c.rope_theta = get_num_or(j, "rope_theta", 10000.0, source);
  const json* scaling = nullptr;
  if (present(j, "rope_parameters")) {
    scaling = &j.at("rope_parameters");
    if (!scaling->is_object()) throw Error(source, "'rope_parameters' must be an object");
    c.rope_theta = get_num_or(*scaling, "rope_theta", c.rope_theta, source);
  }
  if (present(j, "rope_scaling")) {
    scaling = &j.at("rope_scaling");
    if (!scaling->is_object()) throw Error(source, "'rope_scaling' must be an object");
  }
  if (!scaling) return;
  std::string type = "default";
  if (present(*scaling, "rope_type"))
    type = scaling->at("rope_type").get<std::string>();
  else if (present(*scaling, "type"))
    type = scaling->at("type").get<std::string>();
  RopeScaling& r = c.rope_scaling;
  if (type == "default") {
    r.kind = RopeScaling::Kind::kDefault;
  } else if (type == "linear") {
    r.kind = RopeScaling::Kind::kLinear;
    r.factor = get_num_or(*scaling, "factor", 1.0, source);
  } else if (type == "llama3") {
    r.kind = RopeScaling::Kind::kLlama3;
    r.factor = get_num_or(*scaling, "factor", 8.0, source);
    r.low_freq_factor = get_num_or(*scaling, "low_freq_factor", 1.0, source);
    r.high_freq_factor = get_num_or(*scaling, "high_freq_factor", 4.0, source);
    r.original_max_position_embeddings = get_int_or(*scaling, "original_max_position_embeddings", 8192, source);
    if (r.high_freq_factor <= r.low_freq_factor)
      throw Error(source, "llama3 rope scaling needs high_freq_factor > low_freq_factor");
  } else {
    throw Error(source, "rope scaling type '" + type + "' is not supported (supported: default, linear, llama3)");
  }
  if (r.factor <= 0) throw Error(source, "rope scaling factor must be positive");
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source, "config is not a JSON object");
  ModelConfig c;
  c.model_type = present(j, "model_type") ? j.at("model_type").get<std::string>() : "";
  if (c.model_type == "supra") {
    // A supra checkpoint: the base architecture's fields plus the "supra" block.
    if (!present(j, "supra") || !j.at("supra").is_object())
      throw Error(source, "supra checkpoint without a 'supra' block");
    const json& s = j.at("supra");
    const int64_t version = get_int_or(s, "format_version", 0, source);
    if (version != 1) throw Error(source, "unsupported supra format_version " + std::to_string(version));
    if (!s.contains("base_architecture") || !s.at("base_architecture").is_string())
      throw Error(source, "supra block names no base_architecture (LlamaForCausalLM or MistralForCausalLM)");
    json base = j;
    base.erase("supra");
    base["model_type"] = s.value("base_model_type", "");
    base["architectures"] = {s.value("base_architecture", "")};
    ModelConfig b = from_json(base, source);
    SupraSettings st;
    try {
      st.decay = parse_decay(s.value("decay", "reference"));
    } catch (const Error& e) {
      throw Error(source, e.reason());
    }
    st.qk_norm = get_bool_or(s, "qk_norm", false, source);
    st.chunk_size = get_int_or(s, "chunk_size", 64, source);
    if (st.chunk_size <= 0) throw Error(source, "supra chunk_size must be positive");
    b.supra = st;
    return b;
  }
  if (present(j, "architectures")) {
    const json& a = j.at("architectures");
    if (!a.is_array() || a.size() != 1 || !a[0].is_string())
      throw Error(source, "'architectures' must list exactly one architecture");
    c.architecture = a[0].get<std::string>();
  } else if (c.model_type == "llama") {
    c.architecture = "LlamaForCausalLM";
  } else if (c.model_type == "mistral") {
    c.architecture = "MistralForCausalLM";
  }
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM")
    throw Error(source, "unsupported architecture '" + (c.architecture.empty() ? c.model_type : c.architecture) +
                            "' (supported: LlamaForCausalLM, MistralForCausalLM)");
  if (c.model_type.empty()) c.model_type = c.architecture == "LlamaForCausalLM" ? "llama" : "mistral";
  if (c.model_type != "llama" && c.model_type != "mistral")
    throw Error(source, "unsupported model_type '" + c.model_type + "'");

  c.vocab_size = get_int(j, "vocab_size", source);
  c.hidden_size = get_int(j, "hidden_size", source);
  c.intermediate_size = get_int(j, "intermediate_size", source);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", source);
  c.num_attention_heads = get_int(j, "num_attention_heads", source);
  c.num_key_value_heads = get_int_or(j, "num_key_value_heads", c.num_attention_heads, source);
  if (c.num_attention_heads <= 0) throw Error(source, "num_attention_heads must be positive");
  c.head_dim = get_int_or(j, "head_dim", c.hidden_size / c.num_attention_heads, source);
  c.rms_norm_eps = get_num_or(j, "rms_norm_eps", 1e-6, source);
  c.max_position_embeddings = get_int_or(j, "max_position_embeddings", 2048, source);
  c.tie_word_embeddings = get_bool_or(j, "tie_word_embeddings", false, source);
  parse_rope(j, c, source);

  if (c.model_type == "mistral" && present(j, "sliding_window"))
    c.sliding_window = get_int(j, "sliding_window", source);
  if (c.model_type == "llama" && present(j, "sliding_window"))
    throw Error(source, "sliding_window is not part of the Llama architecture");

  if (present(j, "bos_token_id")) c.bos_token_id = get_int(j, "bos_token_id", source);
  if (present(j, "eos_token_id")) {
    const json& e = j.at("eos_token_id");
    if (e.is_array()) {
      for (const json& x : e) c.eos_token_ids.push_back(x.get<int64_t>());
    } else {
      c.eos_token_ids.push_back(get_int(j, "eos_token_id", source));
    }
  }
  if (present(j, "torch_dtype")) c.torch_dtype = j.at("torch_dtype").get<std::string>();
  if (present(j, "dtype")) c.torch_dtype = j.at("dtype").get<std::string>();

  // Options that change the function computed: refused unless supra implements them.
  const std::string act = present(j, "hidden_act") ? j.at("hidden_act").get<std::string>() : "silu";
  if (act != "silu") throw Error(source, "hidden_act '" + act + "' is not supported (only silu)");
  if (get_bool_or(j, "attention_bias", false, source)) throw Error(source, "attention_bias=true is not supported");
  if (get_bool_or(j, "mlp_bias", false, source)) throw Error(source, "mlp_bias=true is not supported");
  c.validate(source);
  return c;
}

ModelConfig ModelConfig::from_file(const std::filesystem::path& path) {
  const std::string text = read_file(path);  // refuses folders and unreadable files
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(path.string(), std::string("invalid JSON: ") + e.what());
  }
  try {
    return from_json(j, path.string());
  } catch (const json::exception& e) {  // wrong JSON types inside fields
    throw Error(path.string(), std::string("bad field type: ") + e.what());
  }
}

void ModelConfig::validate(const std::string& source) const {
  // Positive, and small enough that sizes and parameter counts stay far from int64 overflow (real models are
  // orders of magnitude below these bounds).
  auto positive = [&](int64_t v, const char* name, int64_t most = int64_t{1} << 20) {
    if (v <= 0) throw Error(source, std::string(name) + " must be positive, got " + std::to_string(v));
    if (v > most)
      throw Error(source, std::string(name) + " " + std::to_string(v) + " is larger than supported (" +
                              std::to_string(most) + ")");
  };
  positive(vocab_size, "vocab_size", int64_t{1} << 32);
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers", int64_t{1} << 16);
  positive(num_key_value_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_attention_heads * head_dim, "num_attention_heads × head_dim");
  if (head_dim % 2 != 0) throw Error(source, "head_dim must be even for RoPE, got " + std::to_string(head_dim));
  if (num_attention_heads % num_key_value_heads != 0)
    throw Error(source, "num_attention_heads (" + std::to_string(num_attention_heads) +
                            ") must be a multiple of num_key_value_heads (" + std::to_string(num_key_value_heads) +
                            ")");
  if (rms_norm_eps <= 0) throw Error(source, "rms_norm_eps must be positive");
  if (rope_theta <= 0) throw Error(source, "rope_theta must be positive");
  if (sliding_window && *sliding_window <= 0) throw Error(source, "sliding_window must be positive");
  auto check_id = [&](int64_t id, const char* name) {
    if (id < 0 || id >= vocab_size)
      throw Error(source, std::string(name) + " " + std::to_string(id) + " is outside the vocabulary");
  };
  if (bos_token_id) check_id(*bos_token_id, "bos_token_id");
  for (int64_t e : eos_token_ids) check_id(e, "eos_token_id");
}

int64_t ModelConfig::feature_map_parameters() const {
  int64_t n = q_dim() * q_dim() + q_dim();
  if (SupraSettings::separate_key_map(num_attention_heads, num_key_value_heads)) n += kv_dim() * kv_dim() + kv_dim();
  return n;
}

int64_t ModelConfig::parameter_count() const {
  const int64_t attention = hidden_size * q_dim() + 2 * hidden_size * kv_dim() + q_dim() * hidden_size;
  const int64_t feature_maps = supra ? feature_map_parameters() : 0;
  const int64_t mlp = 3 * hidden_size * intermediate_size;
  const int64_t norms = 2 * hidden_size;
  const int64_t per_layer = attention + feature_maps + mlp + norms;
  const int64_t embeddings = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
  return embeddings + num_hidden_layers * per_layer + hidden_size;
}

nlohmann::json ModelConfig::to_json() const {
  json j;
  j["architectures"] = {architecture};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  switch (rope_scaling.kind) {
    case RopeScaling::Kind::kDefault: j["rope_scaling"] = nullptr; break;
    case RopeScaling::Kind::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_scaling.factor}};
      break;
    case RopeScaling::Kind::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", rope_scaling.factor},
                           {"low_freq_factor", rope_scaling.low_freq_factor},
                           {"high_freq_factor", rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
      break;
  }
  j["max_position_embeddings"] = max_position_embeddings;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (model_type == "mistral") j["sliding_window"] = sliding_window ? json(*sliding_window) : json(nullptr);
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  if (eos_token_ids.size() == 1)
    j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty())
    j["eos_token_id"] = eos_token_ids;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["torch_dtype"] = torch_dtype;
  if (supra) {
    // Converted model: a distinct model_type so no tool mistakes it for the softmax base architecture.
    j["supra"] = {{"format_version", 1},
                  {"base_architecture", architecture},
                  {"base_model_type", model_type},
                  {"decay", to_string(supra->decay)},
                  {"qk_norm", supra->qk_norm},
                  {"chunk_size", supra->chunk_size},
                  {"feature_map", supra->separate_key_map(num_attention_heads, num_key_value_heads) ? "separate_q_and_k"
                                                                                                    : "shared_q_k"},
                  {"state_shape", {num_hidden_layers, num_attention_heads, head_dim, head_dim}}};
    j["architectures"] = {"SupraForCausalLM"};
    j["model_type"] = "supra";
  }
  return j;
}

}  // namespace supra
