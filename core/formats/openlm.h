// Import of the published SUPRA reference format: OpenLM checkpoints as TRI-ML/linear_open_lm writes them for
// Hugging Face (TRI-ML/mistral-supra): config.json with model_type "openlm" (OpenLM `Params` field names) and
// tensors named "model.tok_embeddings.weight", "model.layers.N.attention.in_proj.weight", … (safetensors or
// pytorch_model.bin, single or sharded). The config and names are mapped to supra's (HF Llama names + feature
// maps), so the imported model computes the same function; options whose function supra does not reproduce are
// refused with the reason. Mapping table: docs/formats.md.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "core/formats/stored_model.h"
#include "core/model/config.h"

namespace supra {

// True when a parsed config.json describes an OpenLM model (model_type "openlm" or an OpenLM architecture).
bool is_openlm_config(const nlohmann::json& config);

// The supra config (with SUPRA settings) of an OpenLM linear-attention model. Throws supra::Error naming `source`.
ModelConfig openlm_to_config(const nlohmann::json& config, const std::string& source);

// OpenLM tensors -> supra's names: in_proj split into q/k/v, w12 into gate/up, feature maps renamed. Accepts names
// with the HF wrapper's "model." prefix or bare (OpenLM's own state dict, also "module."-prefixed). Every tensor
// must be used; shapes are checked against `config`.
std::map<std::string, torch::Tensor> openlm_to_tensors(const std::map<std::string, torch::Tensor>& tensors,
                                                       const ModelConfig& config, const std::string& source);

// An OpenLM folder read as a supra checkpoint (format "openlm").
StoredModel read_openlm(const std::filesystem::path& dir, const nlohmann::json& config);

}  // namespace supra
