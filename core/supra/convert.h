// Conversion softmax → SUPRA (docs/method.md §4): every block's attention is replaced by
// SupraAttention holding the *same* pretrained q/k/v/o tensors, plus new feature maps initialised like PyTorch's
// nn.Linear default from a seeded generator. Nothing else in the model changes.
#pragma once
#include <cstdint>

#include "core/model/causal_lm.h"

namespace supra {

// Throws supra::Error if the model is already converted. Feature maps are drawn layer by layer: φ_q weight,
// φ_q bias, then (GQA) φ_k weight, φ_k bias, from one CPU generator seeded with `seed`.
void convert_to_supra(CausalLM& model, const SupraSettings& settings, uint64_t seed);

// Number of parameters conversion adds: ModelConfig::feature_map_parameters() per layer.
int64_t supra_added_parameters(const ModelConfig& config);

}  // namespace supra
