// SUPRA's fixed per-head decays γ_h (never trained), returned as fp32 natural logs log γ_h, one per query head.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace supra {

enum class DecayKind { kReference, kRetNet, kNone };

DecayKind parse_decay(const std::string& name);  // "reference" | "retnet" | "none"; throws supra::Error
std::string to_string(DecayKind kind);

// ALiBi slopes as the reference intends: for H a power of two, slope_h = 2^(−8(h+1)/H); otherwise, with
// c = 2^⌊log2 H⌋, the c power-of-two slopes followed by the first H − c even-indexed slopes for 2c heads
// (H = 3 → [2^−4, 2^−8, 2^−2]). Computed in double.
std::vector<double> alibi_slopes(int64_t heads);

// log γ_h, fp32 [H]: reference γ = exp(−slope_h); RetNet γ_h = 1 − 2^(−5−h); none γ = 1.
torch::Tensor decay_log_gamma(DecayKind kind, int64_t heads);

}  // namespace supra
