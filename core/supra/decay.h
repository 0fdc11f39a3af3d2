// SUPRA's fixed per-head decays γ_h (never trained), returned as fp32 natural logs log γ_h, one per query head.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/model/config.h"

namespace supra {

// ALiBi slopes as the reference intends: for H a power of two, slope_h = 2^(−8(h+1)/H); otherwise, with
// c = 2^⌊log2 H⌋, the c power-of-two slopes followed by the first H − c even-indexed slopes for 2c heads
// (H = 3 → [2^−4, 2^−8, 2^−2]). Computed in double.
std::vector<double> alibi_slopes(int64_t heads);

// log γ_h, fp32 [H]: reference γ = exp(−slope_h); RetNet γ_h = 1 − 2^(−5−h); none γ = 1.
torch::Tensor decay_log_gamma(DecayKind kind, int64_t heads);

// config.json's "supra" block records the decay values as "log_gamma" (the exported modeling files read them).
// Adds them to `config_json` (a converted model's ModelConfig::to_json()); no-op for a softmax model.
void write_log_gamma(nlohmann::json& config_json, const ModelConfig& config);
// Refuses (supra::Error naming `source`) a "supra.log_gamma" that is not what the block's decay kind implies.
void check_log_gamma(const nlohmann::json& config_json, const ModelConfig& config, const std::string& source);

}  // namespace supra
