// Export of a SUPRA model as a Hugging Face folder that `AutoModelForCausalLM.from_pretrained(dir,
// trust_remote_code=True)` loads: safetensors weights (sharded with model.safetensors.index.json above the shard
// limit), config.json (base architecture + the "supra" block + auto_map), generation_config.json, the base model's
// tokenizer files and the remote-code modeling files shipped in scripts/shipped/hf_supra (embedded into the library).
// supra reads the folder back like any supra checkpoint. Layout: docs/formats.md.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/formats/model_io.h"

namespace supra {

struct ExportOptions {
  std::optional<torch::Dtype> dtype;            // kFloat | kBFloat16; unset: bf16 if stored so, else f32
  uint64_t max_shard_bytes = 5'000'000'000ull;  // Hugging Face's default "5GB"
  bool force = false;                           // replace an existing non-empty output folder
  // Folders searched in order for tokenizer files; the first holding any of them provides all of them.
  std::vector<std::filesystem::path> tokenizer_sources;
  // Folder whose generation_config.json is the starting point (bos/eos filled from the config when absent).
  std::filesystem::path generation_config_from;
};

struct ExportResult {
  std::vector<std::string> files;        // names written, sorted
  uint64_t weight_bytes = 0;             // bytes of tensor data
  std::filesystem::path tokenizer_from;  // empty when no tokenizer files were found
};

// "5GB" (10^9), "500MB", "64KB", "2GiB" (2^30), "512MiB", "4096" or "4096B" (bytes), as transformers parses
// max_shard_size (a lowercase final "b" after a decimal unit means bits, e.g. "8Gb" = 1GB). Throws supra::Error.
uint64_t parse_byte_size(const std::string& text, const std::string& subject = "--max-shard-size");

// config.json of the export: ModelConfig::to_json() (model_type "supra", "supra" block) plus auto_map, dtype and
// use_cache. Throws supra::Error when the model is not a SUPRA model.
nlohmann::json export_config_json(const ModelConfig& config, torch::Dtype dtype, const std::string& source);

// generation_config.json: `base` (may be null) with bos/eos from the config filled in where missing.
nlohmann::json export_generation_config(const ModelConfig& config, const nlohmann::json& base);

// Writes the folder atomically: built in "<out>.tmp-<pid>", fsynced, renamed into place (an existing non-empty
// `out` is refused unless options.force; then it is replaced only once the new folder is complete).
ExportResult export_hf_folder(const StoredModel& checkpoint, const std::string& source,
                              const std::filesystem::path& out, const ExportOptions& options);

}  // namespace supra
