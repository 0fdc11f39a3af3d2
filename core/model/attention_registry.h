// Attention kinds by name: the model is handed its mixer. CausalLM asks the registry for each block's attention
// ("softmax" for a pretrained teacher, "supra" after conversion; ModelConfig::attention_kind() says which), so the
// generic model names no concrete kind. A new mixer (a sliding-window hybrid, another recurrent form) registers a
// factory under its name with SUPRA_REGISTER_ATTENTION in its own .cpp and needs no change here or in the model.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/model/attention.h"
#include "core/model/config.h"

namespace supra {

// Builds the attention module of block `layer` for `config`.
using AttentionFactory = std::function<std::shared_ptr<AttentionImpl>(const ModelConfig& config, int64_t layer)>;

// Registers `factory` under `kind` (at static-initialisation time; a second registration of a name throws).
bool register_attention(const std::string& kind, AttentionFactory factory);
// The attention of block `layer` for config.attention_kind(); throws supra::Error for an unknown kind.
std::shared_ptr<AttentionImpl> make_attention(const ModelConfig& config, int64_t layer);
std::vector<std::string> attention_kinds();  // registered names, sorted

}  // namespace supra

// In one .cpp file per kind: SUPRA_REGISTER_ATTENTION(softmax, [](const ModelConfig& c, int64_t) { ... });
#define SUPRA_REGISTER_ATTENTION(kind, ...) \
  static const bool supra_attention_registered_##kind = ::supra::register_attention(#kind, __VA_ARGS__)
