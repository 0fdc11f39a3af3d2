// A model folder's config.json in and out: parsed and validated completely (ModelConfig plus, for a converted model,
// its recorded decay values), and written with everything read_model_config checks. No tensors, no model.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "core/model/config.h"

namespace supra {

// config.json parsed and validated completely: ModelConfig::from_json plus, for a converted model, the check that
// its recorded decay values ("supra.log_gamma") are those of its decay kind. Throws supra::Error naming `source`.
ModelConfig read_model_config(const nlohmann::json& config_json, const std::string& source);
ModelConfig read_model_config(const std::filesystem::path& config_json);
// The config.json of a supra model folder: the config's HF keys plus, for SUPRA, the decay values `supra.log_gamma`
// that read_model_config checks.
nlohmann::json model_config_json(const ModelConfig& config);

}  // namespace supra
