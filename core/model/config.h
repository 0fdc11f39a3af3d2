// ModelConfig: the architecture of a pretrained Llama/Mistral causal LM, parsed from a Hugging Face config.json
// (transformers v4 and v5 spellings) and validated. Anything supra cannot reproduce exactly is refused.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace supra {

// SUPRA's decay kinds (the values γ_h each implies are computed in core/supra/decay.h).
enum class DecayKind { kReference, kRetNet, kNone };
DecayKind parse_decay(const std::string& name);  // "reference" | "retnet" | "none"; throws supra::Error
std::string to_string(DecayKind kind);

// What makes a converted (SUPRA) model: its attention settings. Present in ModelConfig only after conversion.
struct SupraSettings {
  DecayKind decay = DecayKind::kReference;
  bool qk_norm = false;     // parameter-free LayerNorm (eps 1e-5) over q0 and k0 before the feature maps
  int64_t chunk_size = 64;  // chunk length of the parallel (training / prefill) form
  // Feature maps: one shared map for q and k without GQA; a separate key map under GQA (H != H_kv).
  static bool separate_key_map(int64_t heads, int64_t kv_heads) { return heads != kv_heads; }
};

// RoPE frequency scaling. kDefault: HF "default"; kLinear: inv_freq / factor; kLlama3: Llama-3.1 smooth scaling.
struct RopeScaling {
  enum class Kind { kDefault, kLinear, kLlama3 };
  Kind kind = Kind::kDefault;
  double factor = 1.0;
  double low_freq_factor = 1.0;                     // llama3 only
  double high_freq_factor = 4.0;                    // llama3 only
  int64_t original_max_position_embeddings = 8192;  // llama3 only
};

struct ModelConfig {
  std::string architecture;  // "LlamaForCausalLM" | "MistralForCausalLM"
  std::string model_type;    // "llama" | "mistral"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / heads unless config.json gives it
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  std::optional<int64_t> sliding_window;  // Mistral: attend to at most this many most recent tokens (self incl.)
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";  // the checkpoint's declared dtype (informational)
  std::optional<SupraSettings> supra;   // set for converted models (config model_type "supra")

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t gqa_groups() const { return num_attention_heads / num_key_value_heads; }
  // The token mixer of every block, by registry name (core/model/attention_registry.h): "supra" or "softmax".
  std::string attention_kind() const { return supra ? "supra" : "softmax"; }
  // Parameters of the model this config describes (SUPRA feature maps included), without building it.
  int64_t parameter_count() const;
  // Parameters of SUPRA's feature maps in one layer — what conversion adds per layer, whether or not this config is
  // converted: φ_q (H·d)² + H·d, plus φ_k (H_kv·d)² + H_kv·d under GQA.
  int64_t feature_map_parameters() const;

  // Parses and validates; `source` names the file in error messages. Throws supra::Error.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig from_file(const std::filesystem::path& config_json);
  // Hugging Face config.json for this architecture (what save/export write).
  nlohmann::json to_json() const;
  // Throws supra::Error(source, ...) when fields are inconsistent.
  void validate(const std::string& source) const;
};

}  // namespace supra
